"""Which models TRAIL can serve: those whose vLLM class exposes EAGLE-3 aux hidden states.

TRAIL's probe reads layer-k residual streams through vLLM's EAGLE-3 interface (`SupportsEagle3`,
whose `set_aux_hidden_state_layers` makes the model also return chosen layers). A model whose
vLLM class lacks it would serve without predictions, so TRAIL refuses it up front, naming the
architecture, instead of failing deep inside the engine.

Support is read from vLLM's source, not by importing its ~260 model modules: importing them all
takes seconds and about a hundred fail without optional packages (torchvision, torchaudio), which
would make the answer depend on what happens to be installed. The reading follows each registered
class's bases, across modules and re-exports, until it meets `SupportsEagle3` (this is what
`supports_eagle3(cls)` tests at runtime, and the tests check both agree on importable classes).
`python -m trail.engine.architectures --markdown` prints the list that docs/gpu_models.md holds.
"""

from __future__ import annotations

import argparse
import ast
import importlib.util
import json
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

INTERFACES_MODULE = "vllm.model_executor.models.interfaces"
AUX_INTERFACE = "SupportsEagle3"
DOCS_PAGE = "docs/gpu_models.md"
GENERATION_TABLES = (
    "_TEXT_GENERATION_MODELS",
    "_MULTIMODAL_MODELS",
    "_TRANSFORMERS_SUPPORTED_MODELS",
)
"""vLLM's registry tables of generative architectures. The others (pooling, classification,
speculative drafts, the Transformers backend's own class names) never serve a TRAIL request."""
EXAMPLES_IN_ERRORS = (
    "LlamaForCausalLM",
    "MistralForCausalLM",
    "Qwen2ForCausalLM",
    "Qwen3ForCausalLM",
)


class UnsupportedModel(ValueError):
    """The model's vLLM class cannot return aux hidden states, so TRAIL cannot probe it."""


@dataclass(frozen=True)
class VllmClass:
    """Where vLLM implements an architecture: `module:class_name`."""

    module: str
    class_name: str


# ---------------------------------------------------------------------------------------------
# vLLM's registry


def _vllm_registry() -> Any:
    """vLLM's registry module (its import pulls in torch and vLLM's config: seconds, once)."""
    from vllm.model_executor.models import registry

    return registry


@cache
def generation_architectures() -> dict[str, VllmClass]:
    """Every generative architecture built into vLLM, with its class. Relies on: the registry's
    module-level tables (GENERATION_TABLES) of `arch: (module, class)`."""
    registry = _vllm_registry()
    out: dict[str, VllmClass] = {}
    for table in GENERATION_TABLES:
        for arch, (module, class_name) in getattr(registry, table).items():
            out[arch] = VllmClass(registry._resolve_module_name(module), class_name)
    return out


def registered_class(arch: str) -> VllmClass | None:
    """The class vLLM's live registry holds for `arch` (built in or registered by a plugin)."""
    model = _vllm_registry().ModelRegistry.models.get(arch)
    if model is None:
        return None
    if hasattr(model, "module_name"):  # _LazyRegisteredModel: not imported yet
        return VllmClass(model.module_name, model.class_name)
    cls = model.load_model_cls()  # _RegisteredModel: registered as a class object
    return VllmClass(cls.__module__, cls.__qualname__)


# ---------------------------------------------------------------------------------------------
# Reading class bases from source


@dataclass(frozen=True)
class _ClassDef:
    bases: tuple[ast.expr, ...]


@dataclass(frozen=True)
class _Alias:
    value: ast.expr  # `Name = Other` or `Name = module.Other`


@dataclass(frozen=True)
class _Import:
    module: str
    attribute: str | None  # None: the name is the module itself


_Binding = _ClassDef | _Alias | _Import


@dataclass
class _ModuleSymbols:
    """What a module's top level binds, each name with every binding it gets: platform branches
    (`if is_rocm(): from .amd import X else: from .nvidia import X`) and TYPE_CHECKING stubs bind
    one name several ways."""

    bindings: dict[str, list[_Binding]] = field(default_factory=dict)
    star_imports: list[str] = field(default_factory=list)

    def bind(self, name: str, binding: _Binding) -> None:
        self.bindings.setdefault(name, []).append(binding)


def _module_file(module: str) -> Path | None:
    """The source file of a module, found without importing it or its packages."""
    top, *rest = module.split(".")
    try:
        spec = importlib.util.find_spec(top)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return Path(spec.origin) if spec and spec.origin and not rest else None
    base = Path(next(iter(spec.submodule_search_locations))).joinpath(*rest)
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _absolute_module(module: str, is_package: bool, level: int, target: str | None) -> str:
    """Resolve `from <.level><target> import ...` written inside `module`."""
    if level == 0:
        return target or ""
    parts = module.split(".")
    package = parts if is_package else parts[:-1]
    anchor = package[: len(package) - (level - 1)]
    return ".".join([*anchor, target] if target else anchor)


def _top_level_statements(body: list[ast.stmt]) -> list[ast.stmt]:
    """Module-level statements, including those under `if`/`try` (TYPE_CHECKING, fallbacks)."""
    out: list[ast.stmt] = []
    for node in body:
        out.append(node)
        if isinstance(node, ast.If):
            out += _top_level_statements(node.body) + _top_level_statements(node.orelse)
        elif isinstance(node, ast.Try):
            for block in (node.body, node.orelse, node.finalbody):
                out += _top_level_statements(block)
            for handler in node.handlers:
                out += _top_level_statements(handler.body)
    return out


@cache
def _symbols(module: str) -> _ModuleSymbols | None:
    path = _module_file(module)
    if path is None:
        return None
    is_package = path.name == "__init__.py"
    symbols = _ModuleSymbols()
    for node in _top_level_statements(ast.parse(path.read_text(encoding="utf-8")).body):
        if isinstance(node, ast.ClassDef):
            symbols.bind(node.name, _ClassDef(tuple(node.bases)))
        elif isinstance(node, ast.ImportFrom):
            source = _absolute_module(module, is_package, node.level, node.module)
            for alias in node.names:
                if alias.name == "*":
                    symbols.star_imports.append(source)
                else:
                    symbols.bind(alias.asname or alias.name, _Import(source, alias.name))
        elif isinstance(node, ast.Import):
            for alias in node.names:  # `import a.b` binds a; `import a.b as c` binds a.b
                if alias.asname:
                    symbols.bind(alias.asname, _Import(alias.name, None))
                else:
                    top = alias.name.split(".")[0]
                    symbols.bind(top, _Import(top, None))
        elif isinstance(node, ast.Assign) and len(node.targets) == 1:
            target = node.targets[0]
            if isinstance(target, ast.Name) and isinstance(node.value, ast.Name | ast.Attribute):
                symbols.bind(target.id, _Alias(node.value))
    return symbols


def _resolve_name(
    module: str, name: str, followed: frozenset[str], seen: tuple[tuple[str, str], ...]
) -> bool:
    key = (module, name)
    if key == (INTERFACES_MODULE, AUX_INTERFACE):
        return True
    if key in seen or module.split(".")[0] not in followed:
        return False
    symbols = _symbols(module)
    if symbols is None:
        return False
    seen = (*seen, key)
    if name not in symbols.bindings:
        return any(_resolve_name(star, name, followed, seen) for star in symbols.star_imports)
    return any(
        _resolve_binding(module, binding, followed, seen) for binding in symbols.bindings[name]
    )


def _resolve_binding(
    module: str, binding: _Binding, followed: frozenset[str], seen: tuple[tuple[str, str], ...]
) -> bool:
    if isinstance(binding, _ClassDef):
        return any(_resolve_expr(module, base, followed, seen) for base in binding.bases)
    if isinstance(binding, _Alias):
        return _resolve_expr(module, binding.value, followed, seen)
    return binding.attribute is not None and _resolve_name(
        binding.module, binding.attribute, followed, seen
    )


def _resolve_expr(
    module: str, expr: ast.expr, followed: frozenset[str], seen: tuple[tuple[str, str], ...]
) -> bool:
    """A base-class expression: `Name`, or `module_alias.Name` (generic subscripts and calls are
    not interfaces, so they count as no)."""
    if isinstance(expr, ast.Name):
        return _resolve_name(module, expr.id, followed, seen)
    if not (isinstance(expr, ast.Attribute) and isinstance(expr.value, ast.Name)):
        return False
    symbols = _symbols(module)
    owners = [
        f"{b.module}.{b.attribute}" if b.attribute else b.module
        for b in (symbols.bindings.get(expr.value.id, []) if symbols else [])
        if isinstance(b, _Import)
    ]
    return any(_resolve_name(owner, expr.attr, followed, seen) for owner in owners)


def class_supports_aux_hidden_states(vllm_class: VllmClass) -> bool:
    """Whether the class is, or inherits from, vLLM's SupportsEagle3, read from source. Follows
    only modules of vLLM and the class's own package, so torch and transformers bases end the
    search. A name bound several ways qualifies when any binding does: vLLM's platform branches
    put the full CUDA class beside CPU/XPU stubs, and TRAIL's list is the GPU one."""
    followed = frozenset({"vllm", vllm_class.module.split(".")[0]})
    return _resolve_name(vllm_class.module, vllm_class.class_name, followed, ())


# ---------------------------------------------------------------------------------------------
# The public answers


@cache
def supported_classes() -> dict[str, VllmClass]:
    """vLLM's built-in generative architectures whose class gives aux hidden states, by name."""
    return {
        arch: vllm_class
        for arch, vllm_class in sorted(generation_architectures().items())
        if class_supports_aux_hidden_states(vllm_class)
    }


def supported_architectures() -> list[str]:
    """The architecture names (config.json `architectures`) TRAIL can serve, sorted."""
    return list(supported_classes())


def check_architecture(architectures: list[str]) -> str:
    """The vLLM class that will run a model declaring these architectures, if TRAIL can probe
    it; otherwise UnsupportedModel naming the architecture. As in vLLM, the first architecture
    it registers decides; one registered by a plugin is accepted when its class qualifies."""
    if not architectures:
        raise UnsupportedModel(f"the model's config.json names no architecture. {_what_works()}")
    for arch in architectures:
        vllm_class = registered_class(arch)
        if vllm_class is None:
            continue
        if _builtin_class_qualifies(arch) or _plugin_class_qualifies(arch, vllm_class):
            return vllm_class.class_name
        raise UnsupportedModel(_refusal(arch, vllm_class))
    raise UnsupportedModel(
        f"none of the model's architectures ({', '.join(architectures)}) is registered in "
        f"vLLM, so TRAIL cannot serve it. {_what_works()}"
    )


def _builtin_class_qualifies(arch: str) -> bool:
    """Same answer as `arch in supported_classes()`, reading only this class's modules (a
    fraction of a second, where the whole list parses ~220 modules: seconds)."""
    vllm_class = generation_architectures().get(arch)
    return vllm_class is not None and class_supports_aux_hidden_states(vllm_class)


def _plugin_class_qualifies(arch: str, vllm_class: VllmClass) -> bool:
    """An architecture a plugin registered (built-in ones are judged by supported_classes)."""
    if arch in _vllm_registry()._VLLM_MODELS:
        return False
    model = _vllm_registry().ModelRegistry.models[arch]
    if hasattr(model, "model_cls"):  # registered as an imported class: ask it directly
        from vllm.model_executor.models.interfaces import supports_eagle3

        return supports_eagle3(model.model_cls)
    return class_supports_aux_hidden_states(vllm_class)


def _refusal(arch: str, vllm_class: VllmClass) -> str:
    if arch in _vllm_registry()._VLLM_MODELS and arch not in generation_architectures():
        return (
            f"architecture {arch} is registered in vLLM for pooling or as a speculative draft, "
            f"not for generation, so TRAIL cannot serve it. {_what_works()}"
        )
    return (
        f"architecture {arch} (vLLM class {vllm_class.class_name}) cannot give TRAIL its layer "
        f"hidden states: the class does not implement vLLM's EAGLE-3 aux-hidden-state interface "
        f"({AUX_INTERFACE}). {_what_works()}"
    )


def _what_works() -> str:
    return (
        f"Supported architectures include {', '.join(EXAMPLES_IN_ERRORS)} "
        f"({len(supported_classes())} in all: see {DOCS_PAGE})."
    )


def model_architectures(model_dir: str | Path) -> list[str]:
    """The `architectures` a model folder's config.json declares (read offline)."""
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(str(model_dir), local_files_only=True)
    return list(getattr(config, "architectures", None) or [])


# ---------------------------------------------------------------------------------------------
# docs/gpu_models.md


def markdown() -> str:
    """The page docs/gpu_models.md holds (a test keeps it equal to this)."""
    import vllm

    release = vllm.__version__.split("+")[0]  # the CPU and CUDA builds share the model sources
    rows = [
        f"| `{arch}` | `{cls.class_name}` | `{cls.module}` |"
        for arch, cls in supported_classes().items()
    ]
    return "\n".join(
        [
            "# Models TRAIL can serve",
            "",
            "_Generated by `python -m trail.engine.architectures --markdown > "
            f"{DOCS_PAGE}`; do not edit by hand (a test keeps it current)._",
            "",
            "TRAIL reads layer hidden states through vLLM's EAGLE-3 aux-hidden-state interface "
            f"(`{AUX_INTERFACE}`), so it serves a model exactly when the vLLM class for its "
            "config.json `architectures` implements that interface. `check_architecture` in "
            "trail/engine/architectures.py refuses any other model with `UnsupportedModel`, "
            "naming its architecture.",
            "",
            f"vLLM {release}: {len(rows)} of its built-in generative architectures qualify. The "
            "list is read from vLLM's source (class bases up to the interface), so it does not "
            "depend on which optional packages are installed; where vLLM picks a class per "
            "platform it shows the CUDA one. Pooling models and speculative-decoding drafts are "
            "left out: TRAIL schedules generation.",
            "",
            "| Architecture | vLLM class | Module |",
            "| --- | --- | --- |",
            *rows,
            "",
        ]
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--markdown", action="store_true", help="print docs/gpu_models.md")
    args = parser.parse_args(argv)
    if args.markdown:
        print(markdown(), end="")
    else:
        print(json.dumps(supported_architectures(), indent=1))


if __name__ == "__main__":
    main()
