"""The README's defaults tables, built from the config models (so the README cannot drift from them).

`python -m control.tools.config_tables` prints each table between its markers; tests/test_config_validation.py
checks that the README holds exactly these.
"""
from __future__ import annotations

import re
from pathlib import Path

from control.config_schema import defaults_table

README = Path(__file__).resolve().parents[2] / "README.md"
_BLOCK = re.compile(r"<!-- defaults: (?P<name>[^>]+?) -->\n(?P<table>.*?)\n<!-- end defaults -->", re.S)


def readme_tables() -> dict[str, str]:
    """Every defaults table the README shows, by the name its marker gives."""
    from control.env.actions import ACTION_TYPES
    from control.env.config import EnvConfig, ProceduralConfig, StartConfig, TerminationConfig
    from control.env.observations import OBSERVATION_TYPES
    from control.sim.builtin import BuiltinCameraConfig, BuiltinConfig

    tables = {"env_config": defaults_table(EnvConfig), "env_config.start": defaults_table(StartConfig),
              "env_config.termination": defaults_table(TerminationConfig), "env_config.procedural": defaults_table(ProceduralConfig)}
    tables.update({f"env_config.observation type {k}": defaults_table(v.Settings) for k, v in OBSERVATION_TYPES.items()})
    tables.update({f"env_config.action type {k}": defaults_table(v.Settings) for k, v in ACTION_TYPES.items()})
    tables["env_config.builtin"] = defaults_table(BuiltinConfig)
    tables["env_config.builtin.camera"] = defaults_table(BuiltinCameraConfig)
    return tables


def tables_in_readme(text: str) -> dict[str, str]:
    """The generated tables a README text holds, by marker name."""
    return {m["name"]: m["table"] for m in _BLOCK.finditer(text)}


def main() -> None:
    """Print every table with its markers, ready to paste into the README."""
    for name, table in readme_tables().items():
        print(f"<!-- defaults: {name} -->\n{table}\n<!-- end defaults -->\n")


if __name__ == "__main__":
    main()
