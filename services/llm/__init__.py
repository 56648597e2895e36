"""What agora's services need from a language model: messages, a port, and recorded calls.

Only data and protocols live here; the HTTP adapters are in ``infra/llm``. A service never
calls a model directly: it goes through :func:`services.llm.recording.recorded_call`, which
answers from the goal's recorded ``llm_responded`` events when it can, so replay and rerun
never reach the network.
"""
