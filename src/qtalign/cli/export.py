"""`qtalign export lm-eval`: write a task's prompts as lm-evaluation-harness tasks (one per language, and a group)."""

from __future__ import annotations

import argparse

from qtalign.cli.common_options import add_data_options, eval_settings_from_args


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("export", help="write qtalign's tasks for other evaluation tools (lm-eval)")
    esub = p.add_subparsers(dest="export_format", required=True, metavar="FORMAT")
    e = esub.add_parser(
        "lm-eval", help="the task's prompts as lm-eval task YAMLs over local files",
        description="Write lm-evaluation-harness tasks: qtalign_TASK_LANG per language and the group qtalign_TASK "
                    "(unweighted mean over languages), over local item files whose prompts are exactly the ones "
                    "`qtalign eval` scores with the same options (`qtalign prompts` prints them). Run them offline "
                    "with `lm_eval --include_path OUT --tasks qtalign_TASK --log_samples ...` and compare the runs "
                    "with `qtalign compare`. lm-eval scores each label word by its full log-likelihood, as "
                    "`qtalign eval --scoring loglik` does (docs/lm-eval.md).")
    add_data_options(e)
    e.add_argument("--out", required=True, help="folder for the YAMLs and item files (lm_eval --include_path)")
    e.add_argument("--overwrite", action="store_true",
                   help="replace an earlier export of this task in --out made with other settings")
    e.set_defaults(func=run_lmeval)


def run_lmeval(args: argparse.Namespace) -> int:
    from qtalign.export import ExportSettings
    from qtalign.export import run as export

    args.command = "prompts"  # --protocol presets the options as for `qtalign prompts`
    settings = ExportSettings.parse({"prompts": eval_settings_from_args(args), "out": args.out,
                                     "overwrite": args.overwrite}, "command line")
    res = export(settings)
    for lang, name in res.tasks.items():
        print(f"{name}: {res.items[lang]} items")
    print(f"group {res.group}: {len(res.tasks)} languages; run: lm_eval --model hf --model_args pretrained=MODEL "
          f"--include_path {args.out} --tasks {res.group} --log_samples --output_path RUNS/NAME")
    return 0
