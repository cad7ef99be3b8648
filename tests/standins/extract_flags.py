"""Regenerates flags.json, the command-line flags the pinned vLLM and Ray accept, from their sources.

Usage: python tests/standins/extract_flags.py VLLM_SRC_DIR RAY_SCRIPTS_PY > tests/standins/flags.json
VLLM_SRC_DIR is an unpacked vllm-0.11.0 sdist (`pip download --no-deps --no-binary :all: vllm==0.11.0`),
RAY_SCRIPTS_PY is ray/scripts/scripts.py from the Ray wheel (`pip download --no-deps ray==2.49.2`).
Reads the sources with ast (never imports them): every literal `add_argument("--x", ...)` and, for
vLLM's dataclass-driven flags (`**kwargs["field"]`), the field's annotation decides whether the flag
takes a value (vLLM turns any bool-typed field into `--x/--no-x`, see `_compute_kwargs`).
"""

from __future__ import annotations

import ast
import json
import sys
from pathlib import Path


def dataclass_fields(config_dir: Path, extra: list[Path]) -> dict[str, dict[str, str]]:
    """class name -> field name -> annotation source, for every class in vllm/config and the extra files."""
    classes: dict[str, dict[str, str]] = {}
    for path in [*sorted(config_dir.glob("*.py")), *extra]:
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.ClassDef):
                fields = classes.setdefault(node.name, {})
                for item in node.body:
                    if isinstance(item, ast.AnnAssign) and isinstance(item.target, ast.Name):
                        fields[item.target.id] = ast.unparse(item.annotation)
    return classes


def kwargs_sources(tree: ast.AST) -> dict[str, str]:
    """Variable name -> dataclass of `x = get_kwargs(Cls)` assignments."""
    found = {}
    for node in ast.walk(tree):
        if (isinstance(node, ast.Assign) and isinstance(node.value, ast.Call)
                and getattr(node.value.func, "id", "") == "get_kwargs" and node.value.args
                and isinstance(node.targets[0], ast.Name)):
            found[node.targets[0].id] = ast.unparse(node.value.args[0])
    return found


LITERAL_ALIASES: dict[str, ast.expr] = {}  # `Name = Literal[...]` at module level of the config files


def literal_aliases(paths: list[Path]) -> None:
    for path in paths:
        for node in ast.parse(path.read_text()).body:
            target = node.targets[0] if isinstance(node, ast.Assign) and len(node.targets) == 1 else (
                node.target if isinstance(node, ast.AnnAssign) else None)
            value = node.value if isinstance(node, (ast.Assign, ast.AnnAssign)) else None
            if isinstance(target, ast.Name) and isinstance(value, ast.Subscript) and ast.unparse(value.value) == "Literal":
                LITERAL_ALIASES[target.id] = value


def literal_choices(annotation: str) -> list[str] | None:
    """The values a Literal-typed field accepts (through Optional/Union and module-level aliases);
    None when any member of a Union is not a Literal (a plain str or a class accepts more)."""
    try:
        node = ast.parse(annotation, mode="eval").body
    except SyntaxError:
        return None
    members = [node]
    choices: list[str] = []
    while members:
        member = members.pop(0)
        if isinstance(member, ast.Name) and member.id in LITERAL_ALIASES:
            member = LITERAL_ALIASES[member.id]
        if isinstance(member, ast.Constant) and member.value is None or ast.unparse(member) == "None":
            continue
        if isinstance(member, ast.Subscript) and ast.unparse(member.value) in ("Optional", "Union"):
            members.extend(member.slice.elts if isinstance(member.slice, ast.Tuple) else [member.slice])
            continue
        if isinstance(member, ast.BinOp) and isinstance(member.op, ast.BitOr):
            members.extend([member.left, member.right])
            continue
        if isinstance(member, ast.Subscript) and ast.unparse(member.value) == "Literal":
            elts = member.slice.elts if isinstance(member.slice, ast.Tuple) else [member.slice]
            constants = [e for e in elts if isinstance(e, ast.Constant)]
            if len(constants) == len(elts):
                choices.extend(str(e.value) for e in constants)
                continue
        return None
    return choices or None


def flags_of(path: Path, rel: str, classes: dict[str, dict[str, str]]) -> dict[str, dict]:
    tree = ast.parse(path.read_text())
    sources = kwargs_sources(tree)
    flags: dict[str, dict] = {}
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Call) and getattr(node.func, "attr", "") in ("add_argument", "option")):
            continue
        names = [a.value for a in node.args if isinstance(a, ast.Constant) and isinstance(a.value, str)
                 and a.value.startswith("-")]
        # click: @click.option("--port", required=False, type=int, ...); ray uses it for `ray start`
        if not names:
            continue
        keywords = {k.arg: k.value for k in node.keywords}
        takes_value, boolean_optional, choices = True, False, None
        action = keywords.get("action")
        if action is not None:
            text = ast.unparse(action)
            if "BooleanOptionalAction" in text:
                takes_value, boolean_optional = False, True
            elif text.strip("'\"") in ("store_true", "store_false", "count", "help", "version"):
                takes_value = False
        if keywords.get("is_flag") is not None and ast.unparse(keywords["is_flag"]) == "True":
            takes_value = False
        if "choices" in keywords and isinstance(keywords["choices"], (ast.List, ast.Tuple)):
            choices = [str(e.value) for e in keywords["choices"].elts if isinstance(e, ast.Constant)]
        for k in node.keywords:
            if k.arg is None and isinstance(k.value, ast.Subscript):  # **model_kwargs["field"]
                var, field = ast.unparse(k.value.value), k.value.slice
                cls = sources.get(var)
                if cls and isinstance(field, ast.Constant) and isinstance(field.value, str):
                    annotation = classes.get(cls, {}).get(field.value, "")
                    if "bool" in annotation and "action" not in keywords and "type" not in keywords:
                        takes_value, boolean_optional = False, True
                    choices = choices or literal_choices(annotation)
        for name in names:
            flags[name] = {"value": takes_value, "source": rel}
            if choices:
                flags[name]["choices"] = choices
        if boolean_optional:
            for name in names:
                if name.startswith("--"):
                    flags["--no-" + name[2:]] = {"value": False, "source": rel}
    return flags


def frontend_flags(path: Path, rel: str, classes: dict[str, dict[str, str]]) -> dict[str, dict]:
    """FrontendArgs' fields become --field-name flags (cli_args.py: add_cli_args loops over get_kwargs)."""
    flags = {}
    for name, annotation in classes["FrontendArgs"].items():
        flag = "--" + name.replace("_", "-")
        if "bool" in annotation:
            flags[flag] = {"value": False, "source": rel}
            flags["--no-" + flag[2:]] = {"value": False, "source": rel}
        else:
            flags[flag] = {"value": True, "source": rel}
            if literal_choices(annotation):
                flags[flag]["choices"] = literal_choices(annotation)
    return flags


def main(vllm_src: str, ray_scripts: str) -> None:
    root = Path(vllm_src)
    arg_utils = root / "vllm/engine/arg_utils.py"
    cli_args = root / "vllm/entrypoints/openai/cli_args.py"
    classes = dataclass_fields(root / "vllm/config", [arg_utils, cli_args])
    literal_aliases([*sorted((root / "vllm/config").glob("*.py")), arg_utils, cli_args])
    serve = {**flags_of(arg_utils, "vllm/engine/arg_utils.py", classes),
             **flags_of(cli_args, "vllm/entrypoints/openai/cli_args.py", classes),
             **frontend_flags(cli_args, "vllm/entrypoints/openai/cli_args.py", classes)}
    bench = {**flags_of(root / "vllm/benchmarks/datasets.py", "vllm/benchmarks/datasets.py", classes),
             **flags_of(root / "vllm/benchmarks/serve.py", "vllm/benchmarks/serve.py", classes)}
    ray_tree = ast.parse(Path(ray_scripts).read_text())
    start = next(n for n in ast.walk(ray_tree) if isinstance(n, ast.FunctionDef) and n.name == "start")
    ray_start: dict[str, dict] = {}
    for deco in start.decorator_list:
        if isinstance(deco, ast.Call) and getattr(deco.func, "attr", "") == "option":
            keywords = {k.arg: k.value for k in deco.keywords}
            is_flag = "is_flag" in keywords and ast.unparse(keywords["is_flag"]) == "True"
            for a in deco.args:
                if isinstance(a, ast.Constant) and isinstance(a.value, str) and a.value.startswith("-"):
                    ray_start[a.value] = {"value": not is_flag, "source": "ray/scripts/scripts.py"}
    print(json.dumps({
        "vllm_version": "0.11.0", "ray_version": "2.49.2",
        "vllm_serve": dict(sorted(serve.items())),
        "vllm_bench_serve": dict(sorted(bench.items())),
        "ray_start": dict(sorted(ray_start.items())),
    }, indent=1))


if __name__ == "__main__":
    main(*sys.argv[1:])
