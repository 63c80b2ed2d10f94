"""``chat-shell models``: the default model, aliases, fallbacks, and which credentials exist."""

from __future__ import annotations

import json
import os
from typing import Any

from chat_shell import load_settings

from ._exit import EXIT_OK


def models(*, json_output: bool) -> int:
    from chat_shell import ChatShellError, ModelRouter
    from chat_shell._models.router import PROVIDER_KEY_VARIABLES

    settings = load_settings()
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
        for provider, variables in PROVIDER_KEY_VARIABLES.items()
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
        detail = ", ".join(found) if found else f"set {PROVIDER_KEY_VARIABLES[provider][0]}"
        print(f"  {mark} {provider.ljust(12)} {detail}")
    if configured_keys:
        print(f"keys in config.toml for: {', '.join(configured_keys)}")
    return EXIT_OK
