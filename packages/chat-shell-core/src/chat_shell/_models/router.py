"""From a model name to a backend and the endpoint, key and options it is called with.

Backends are plugins: a factory (usually the class) under the ``chat_shell.models`` entry-point
group, named after the provider prefix it serves (``openai`` for ``openai/…``). The one named
``litellm`` serves every provider litellm knows that has no backend of its own. Core registers
its two backends the same way, and a backend's module is imported only when one of its models
is first called (so litellm is never imported for ``openai/…``).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib.metadata import EntryPoint

from .._config import ModelConfig, Settings
from .._errors import UserError
from .._plugins import plugin_entry_points
from .backend import CONNECT_TIMEOUT, FIRST_BYTE_TIMEOUT, READ_TIMEOUT, ModelBackend
from .openai_backend import DEFAULT_OPENAI_BASE
from .providers import LITELLM_PROVIDERS, bare_model_provider

__all__ = ["PROVIDER_KEY_VARIABLES", "ModelRouter", "ModelSpec"]

MODELS_GROUP = "chat_shell.models"
# The entry point of the backend for the providers litellm knows that have none of their own.
_LITELLM = "litellm"

# Where each provider's key is usually found; used to say clearly what is missing (and by the
# CLI to say which providers have credentials). Keys themselves are never shown.
PROVIDER_KEY_VARIABLES: dict[str, tuple[str, ...]] = {
    "openai": ("OPENAI_API_KEY",),
    "anthropic": ("ANTHROPIC_API_KEY",),
    "gemini": ("GEMINI_API_KEY", "GOOGLE_API_KEY"),
    "mistral": ("MISTRAL_API_KEY",),
    "groq": ("GROQ_API_KEY",),
    "openrouter": ("OPENROUTER_API_KEY", "OR_API_KEY"),
    "deepseek": ("DEEPSEEK_API_KEY",),
    "xai": ("XAI_API_KEY",),
    "cohere": ("COHERE_API_KEY", "CO_API_KEY"),
    "cohere_chat": ("COHERE_API_KEY", "CO_API_KEY"),
    "together_ai": ("TOGETHERAI_API_KEY", "TOGETHER_API_KEY", "TOGETHER_AI_TOKEN"),
    "perplexity": ("PERPLEXITYAI_API_KEY", "PERPLEXITY_API_KEY"),
    "fireworks_ai": ("FIREWORKS_AI_API_KEY", "FIREWORKS_API_KEY"),
    "cerebras": ("CEREBRAS_API_KEY",),
}


def _split_name(name: str, plugins: Mapping[str, EntryPoint]) -> tuple[str, str, str]:
    """``(full name, provider, model)`` of ``provider/model`` or of a well-known bare name
    (``gpt-4o`` → ``openai/gpt-4o``, resolved as litellm resolves it); ``UserError`` says what
    to write instead of a name that is neither. ``plugins``: the model backends by the provider
    they serve; nothing is imported."""
    name = name.strip()
    if not name:
        raise UserError("no model given: pass a model like 'openai/gpt-4o-mini'")
    provider, sep, model = name.partition("/")
    if not sep:
        bare = bare_model_provider(name)
        if bare is None:
            raise UserError(
                f"model {name!r} has no provider prefix: use provider/model, e.g. "
                "'openai/gpt-4o-mini', 'anthropic/claude-sonnet-4-5' or 'ollama/llama3.2'"
            )
        return f"{bare}/{name}", bare, name
    if not provider or not model:
        raise UserError(f"model {name!r} is not provider/model, e.g. 'openai/gpt-4o-mini'")
    own = sorted(set(plugins) - {_LITELLM})  # providers with a backend of their own
    if provider not in LITELLM_PROVIDERS and provider not in own:
        raise UserError(
            f"unknown model provider {provider!r} in {name!r}: use a litellm provider prefix "
            "such as openai, anthropic, gemini, ollama, mistral, groq or openrouter"
            + (f" (or a plugin's: {', '.join(own)})" if set(own) - {"openai"} else "")
        )
    return name, provider, model


@dataclass(frozen=True, slots=True)
class ModelSpec:
    """A resolved model: ``name`` as configured (``provider/model``), ``provider_model`` as sent."""

    name: str
    provider: str
    provider_model: str
    api_base: str | None = None
    api_key: str | None = field(default=None, repr=False)
    temperature: float | None = None
    max_tokens: int | None = None
    timeout: float = 600.0
    connect_timeout: float = CONNECT_TIMEOUT
    first_byte_timeout: float = FIRST_BYTE_TIMEOUT
    read_timeout: float = READ_TIMEOUT
    ca_bundle: str | None = None
    context_window: int | None = None  # from config; None: the model table's, if it knows


class ModelRouter:
    """Resolves model names and owns the backends (and their connection pools)."""

    def __init__(self, settings: Settings, environ: Mapping[str, str] | None = None) -> None:
        self.settings = settings
        self._environ = environ
        self._plugins: dict[str, EntryPoint] | None = None
        self._backends: dict[str, ModelBackend] = {}

    @property
    def environ(self) -> Mapping[str, str]:
        return os.environ if self._environ is None else self._environ

    @property
    def plugins(self) -> Mapping[str, EntryPoint]:
        """The installed model backends by the provider prefix they serve (looked up once;
        nothing is imported)."""
        if self._plugins is None:
            self._plugins = plugin_entry_points(MODELS_GROUP)
        return self._plugins

    def _backend_name(self, provider: str) -> str:
        """The entry point whose backend serves ``provider``."""
        if provider in self.plugins and provider != _LITELLM:
            return provider
        return _LITELLM

    def full_name(self, name: str) -> str:
        """``provider/model`` for a name, an alias or a well-known bare name, without looking
        at credentials; ``UserError`` for a name that cannot be resolved."""
        return _split_name(self.settings.aliases.get(name, name), self.plugins)[0]

    def resolve(
        self,
        name: str,
        *,
        api_base: str | None = None,
        api_key: str | None = None,
    ) -> ModelSpec:
        """Resolve ``name`` (or an alias) to a spec; ``UserError`` says what is wrong or missing."""
        given = self.settings.aliases.get(name, name).strip() if name else ""
        full, provider, provider_model = _split_name(given, self.plugins)
        config = self.settings.models.get(full) or self.settings.models.get(given) or ModelConfig()
        env = self.environ
        # A backend of its own gets the name without the prefix and finds its own credentials.
        litellm_served = self._backend_name(provider) == _LITELLM
        base = api_base or config.api_base
        key = api_key or config.api_key
        if provider == "openai":
            base = base or env.get("OPENAI_BASE_URL") or env.get("OPENAI_API_BASE") or None
            key = key or env.get("OPENAI_API_KEY") or None
            if not key and (base is None or base.rstrip("/") == DEFAULT_OPENAI_BASE):
                raise UserError(
                    f"no API key for {full}: set OPENAI_API_KEY, or "
                    f"`chat-shell config set models.{full}.api_key KEY`, or point "
                    "OPENAI_BASE_URL at an OpenAI-compatible server"
                )
        elif not key and provider in PROVIDER_KEY_VARIABLES and litellm_served:
            variables = PROVIDER_KEY_VARIABLES[provider]
            if not any(env.get(variable) for variable in variables):
                raise UserError(
                    f"no API key for {full}: set {variables[0]}, or "
                    f"`chat-shell config set models.{full}.api_key KEY`"
                )
        if not litellm_served:
            sent = provider_model
        elif provider == "ollama":
            # litellm's ollama/ provider asks /api/generate for JSON whenever tools are offered;
            # ollama_chat/ is the same model on /api/chat, with native tool calls.
            sent = f"ollama_chat/{provider_model}"
        else:
            sent = full
        return ModelSpec(
            name=full,
            provider=provider,
            provider_model=sent,
            api_base=base,
            api_key=key,
            temperature=config.temperature,
            max_tokens=config.max_tokens,
            timeout=config.timeout or 600.0,
            connect_timeout=config.connect_timeout or self.settings.connect_timeout,
            first_byte_timeout=config.first_byte_timeout or self.settings.first_byte_timeout,
            read_timeout=config.read_timeout or self.settings.read_timeout,
            ca_bundle=config.ca_bundle,
            context_window=config.context_window,
        )

    def backend(self, spec: ModelSpec) -> ModelBackend:
        """The backend that calls ``spec`` (made on first use, then shared); ``UserError`` if
        it cannot be loaded or cannot call this model here (a missing optional dependency)."""
        name = self._backend_name(spec.provider)
        backend = self._backends.get(name)
        if backend is None:
            entry_point = self.plugins.get(name)
            if entry_point is None:
                raise UserError(f"no model backend for {spec.name}: none is registered as {name!r}")
            try:
                factory = entry_point.load()
            except Exception as exc:
                raise UserError(
                    f"the model backend {name!r} ({entry_point.value}) failed to load: "
                    f"{type(exc).__name__}: {exc}"
                ) from exc
            made = factory()
            if not isinstance(made, ModelBackend):
                raise UserError(f"model plugin {name!r} did not return a ModelBackend")
            backend = self._backends[name] = made
        backend.check_model(spec.name)
        return backend

    async def aclose(self) -> None:
        backends, self._backends = list(self._backends.values()), {}
        for backend in backends:
            await backend.aclose()
