"""Model backends and the seam they plug into: the request and part types (``backend``), the
router that picks a backend and its fallbacks (``router``), provider naming (``providers``), the
OpenAI-compatible client (``openai_backend`` over ``transport``, ``sse``, ``proxies``, ``tls``) and
the optional litellm backend (``litellm_backend``)."""
