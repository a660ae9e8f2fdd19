"""Old module paths that keep working after a move: one table, one import hook.

Saved config.yaml files (`class_path: paralm.checkpointing.AtomicCheckpointIO`), checkpoints that pickle a
module path, and users' code name modules by where they used to live. Instead of one shim file per old
path, `MOVED` lists {old: new} and `install()` (called from paralm/__init__.py) puts a finder on
`sys.meta_path` that answers an old name with the new module object itself. So `import old` gives the
module `new` (`old is new`): an attribute patched through either path is seen through both, and the
module keeps its own `__spec__` and `__name__`. `python -m old` runs the new module's code as __main__.

No file may be called paralm/secrets.py: run as a script (`fabric run paralm/launch.py`), its folder on
sys.path would shadow the standard library's `secrets`; the old name `paralm.secrets` lives only here.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import sys

MOVED: dict[str, str] = {
    # the judge may not import paralm.eval: the formats it shares moved out (issue 15, item 2)
    "paralm.eval.jsonl": "paralm.formats.jsonl",
    "paralm.eval.predictions": "paralm.formats.predictions",
    "paralm.eval.bootstrap": "paralm.stats.bootstrap",
    # checkpointing <-> fault cycle cut; names that say what they do (issue 15, items 2-3)
    "paralm.checkpointing": "paralm.fault.checkpoint_io",
    "paralm.secrets": "paralm.secret_guard",
    "paralm.features_cache": "paralm.feature_store_fill",
    # every Lightning callback lives in callbacks/
    "paralm.fault.nonfinite": "callbacks.nonfinite",
    "paralm.runs.sweep_callback": "callbacks.sweep_trial",
    # the fake API server left the production client package
    "paralm.api.testing": "paralm.api.fake.server",
    "paralm.api.fake_faults": "paralm.api.fake.faults",
    "paralm.api.serve_fake": "paralm.api.fake.serve",
    # subpackages instead of filename prefixes: runs/ablate/, runs/sweep/, creation/generate/
    "paralm.runs.ablate_config": "paralm.runs.ablate.config",
    "paralm.runs.ablate_fit": "paralm.runs.ablate.fit",
    "paralm.runs.ablate_judge": "paralm.runs.ablate.judge",
    "paralm.runs.ablate_launch": "paralm.runs.ablate.launch",
    "paralm.runs.ablate_metrics": "paralm.runs.ablate.metrics",
    "paralm.runs.ablate_plot": "paralm.runs.ablate.plot",
    "paralm.runs.ablate_prepare": "paralm.runs.ablate.prepare",
    "paralm.runs.ablate_report": "paralm.runs.ablate.report",
    "paralm.runs.ablate_run": "paralm.runs.ablate.run",
    "paralm.runs.ablate_stats": "paralm.runs.ablate.stats",
    "paralm.runs.ablate_wandb": "paralm.runs.ablate.wandb",
    "paralm.runs.sweep_check": "paralm.runs.sweep.check",
    "paralm.runs.sweep_metrics": "paralm.runs.sweep.metrics",
    "paralm.runs.sweep_spec": "paralm.runs.sweep.spec",
    "paralm.runs.sweep_state": "paralm.runs.sweep.state",
    "paralm.runs.sweep_table": "paralm.runs.sweep.table",
    "paralm.runs.sweep_trial": "paralm.runs.sweep.trial",
    "paralm.creation.gen_backends": "paralm.creation.generate.backends",
    "paralm.creation.gen_config": "paralm.creation.generate.config",
    "paralm.creation.gen_inputs": "paralm.creation.generate.inputs",
    "paralm.creation.gen_journal": "paralm.creation.generate.journal",
    "paralm.creation.gen_output": "paralm.creation.generate.output",
    "paralm.creation.gen_run": "paralm.creation.generate.run",
    "paralm.creation.qa_filters": "paralm.creation.generate.filters",
    "paralm.creation.qa_leakage": "paralm.creation.generate.leakage",
    "paralm.creation.qa_parse": "paralm.creation.generate.parse",
    "paralm.creation.qa_prompt": "paralm.creation.generate.prompt",
    "paralm.creation.qa_template": "paralm.creation.generate.template",
}


class MovedModuleFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Finds and 'loads' an old module name as the already-imported new module."""

    def find_spec(self, fullname, path=None, target=None):
        if fullname not in MOVED:
            return None
        new = MOVED[fullname]  # origin: the new file, which `python -m <old name>` puts in sys.argv[0]
        return importlib.machinery.ModuleSpec(fullname, self, origin=importlib.util.find_spec(new).origin,
                                              loader_state=new)

    def create_module(self, spec):
        module = importlib.import_module(spec.loader_state)
        spec.loader_state = (spec.loader_state, module.__spec__)  # import sets __spec__: put it back below
        return module

    def exec_module(self, module):
        """Nothing to run (the new module ran when imported); only restore the new module's own spec."""
        alias_spec = module.__spec__
        module.__spec__ = alias_spec.loader_state[1]

    def get_code(self, fullname):
        """For `python -m <old name>`: the new module's code, which runpy then runs as __main__."""
        new = MOVED[fullname]
        return importlib.util.find_spec(new).loader.get_code(new)


def command_names(package: str):
    """A module `__getattr__` for a package that was one command module (paralm.runs.ablate, ...).

    `from paralm.runs.ablate import main` keeps working: a name that is not a submodule of the package
    is looked up in `<package>.command` on first use, so importing one helper (`paralm.runs.ablate.config`)
    does not pull in the command's heavier imports. The command's own module is `<package>.command`:
    patch names there."""

    def __getattr__(name: str):
        if not name.startswith("__"):
            if importlib.util.find_spec(f"{package}.{name}") is not None:  # a submodule
                return importlib.import_module(f"{package}.{name}")
            command = importlib.import_module(f"{package}.command")
            if hasattr(command, name):
                return getattr(command, name)
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    return __getattr__


def install() -> None:
    """Put the finder first on sys.meta_path (once): old names have no file, so order only saves lookups."""
    if not any(isinstance(f, MovedModuleFinder) for f in sys.meta_path):
        sys.meta_path.insert(0, MovedModuleFinder())
