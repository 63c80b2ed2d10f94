"""``chat-shell models``: the default model, aliases, fallbacks, and which credentials exist."""

from __future__ import annotations

import json
import os
from typing import Any

from ._exit import EXIT_OK
from ._runtime import load

# Where each provider's key is usually found (display only: keys are never printed).
PROVIDER_KEYS: dict[str, tuple[str, ...]] = {
    "openai": ("OPENAI_API_KEY",),
    "anthropic": ("ANTHROPIC_API_KEY",),
    "gemini": ("GEMINI_API_KEY", "GOOGLE_API_KEY"),
    "mistral": ("MISTRAL_API_KEY",),
    "groq": ("GROQ_API_KEY",),
    "openrouter": ("OPENROUTER_API_KEY", "OR_API_KEY"),
    "deepseek": ("DEEPSEEK_API_KEY",),
    "xai": ("XAI_API_KEY",),
    "cohere": ("COHERE_API_KEY", "CO_API_KEY"),
    "together_ai": ("TOGETHERAI_API_KEY", "TOGETHER_API_KEY"),
}


def models(*, json_output: bool) -> int:
    from chat_shell import ChatShellError, ModelRouter

    settings = load()
    router = ModelRouter(settings)
    sources = settings.sources

    names = [settings.model, *settings.fallback_models]
    names += [target for target in settings.aliases.values() if target not in names]
    names += [name for name in settings.models if name not in names]
    status: dict[str, dict[str, Any]] = {}
    for name in names:
        try:
            spec = router.resolve(name)
        except ChatShellError as exc:
            status[name] = {"ready": False, "problem": exc.message}
            continue
        status[name] = {
            "ready": True,
            "provider": spec.provider,
            "api_base": spec.api_base,
            "api_key": "set" if spec.api_key else "from the provider's environment",
        }
    providers = {
        provider: [variable for variable in variables if os.environ.get(variable)]
        for provider, variables in PROVIDER_KEYS.items()
    }
    configured_keys = sorted(name for name, config in settings.models.items() if config.api_key)

    if json_output:
        body = {
            "default": settings.model,
            "default_source": sources.get("model", "default"),
            "fallback_models": settings.fallback_models,
            "aliases": settings.aliases,
            "models": status,
            "credentials": {
                provider: {"env": found, "present": bool(found)}
                for provider, found in providers.items()
            },
            "keys_in_config": configured_keys,
        }
        print(json.dumps(body, indent=2))
        return EXIT_OK

    print(f"default model:   {settings.model}  ({sources.get('model', 'default')})")
    print(f"fallbacks:       {', '.join(settings.fallback_models) or 'none'}")
    if settings.aliases:
        print("aliases:")
        width = max(len(alias) for alias in settings.aliases)
        for alias, target in sorted(settings.aliases.items()):
            print(f"  {alias.ljust(width)} → {target}")
    else:
        print("aliases:         none (chat-shell config set aliases.NAME MODEL)")
    print("models:")
    for name, info in status.items():
        if info["ready"]:
            where = f" at {info['api_base']}" if info.get("api_base") else ""
            print(f"  ✓ {name}{where}")
        else:
            print(f"  ✗ {name}: {info['problem']}")
    print("credentials (environment):")
    for provider, found in providers.items():
        mark = "✓" if found else "·"
        detail = ", ".join(found) if found else f"set {PROVIDER_KEYS[provider][0]}"
        print(f"  {mark} {provider.ljust(12)} {detail}")
    if configured_keys:
        print(f"keys in config.toml for: {', '.join(configured_keys)}")
    return EXIT_OK
