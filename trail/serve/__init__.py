"""Ray Serve: LLM replicas with TRAIL, a router by predicted remaining work, the OpenAI API.

See docs/serving.md. `deployments/app.py:build_app` is the application builder.
"""
