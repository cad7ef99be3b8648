"""The python and pip of a venv made by the python3 stand-in.

pip: `pip install [--quiet] modelscope==X` succeeds when the state's index has that version and is
reachable. python: runs the real interpreter, with the ModelScope stand-in importable only once pip
installed modelscope into this venv.
"""

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import standin  # noqa: E402


def main(tool: str, venv: str, args: list[str]) -> None:
    standin.record(f"{venv}/bin/{tool}", args)
    if tool == "pip":
        words = [a for a in args if not a.startswith("-")]
        if words[:1] != ["install"] or any(a not in ("--quiet", "-q") for a in args if a.startswith("-")):
            standin.die(f"pip stand-in: models `pip install [--quiet] PKG==VER`, got {args}", 2)
        with standin.state() as data:
            for spec in words[1:]:
                name, _, version = spec.partition("==")
                if not data["pypi"]["reachable"]:
                    standin.die(f"ERROR: Could not find a version that satisfies the requirement {spec} (from versions: none)", 1)
                if version not in data["pypi"].get(name, []):
                    standin.die(f"ERROR: No matching distribution found for {spec}", 1)
                data["venvs"].setdefault(venv, {})[name] = version
        return
    env = dict(os.environ)
    if "modelscope" in standin.read_state()["venvs"].get(venv, {}):
        env["PYTHONPATH"] = str(standin.STANDINS_DIR / "pylib")
    os.execve("/usr/bin/python3", ["/usr/bin/python3", *args], env)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3:])
