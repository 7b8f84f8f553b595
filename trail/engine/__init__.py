"""vLLM integration: engine settings, the TRAIL plugin model and the TRAIL scheduler."""
