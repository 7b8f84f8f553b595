"""TRAIL-serve: length-aware LLM serving on vLLM and Ray Serve."""
