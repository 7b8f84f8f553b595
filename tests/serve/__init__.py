"""A package on purpose: pytest ties `scope="package"` to a directory with `__init__.py`;
without it the shared app (conftest.serve_app) lives to the end of the session and the next
test that starts its own Ray fails with "ray.init twice" (docs/pitfalls.md)."""
