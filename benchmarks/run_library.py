"""Run the shipped study library on two disjoint seed sets and write its verdict table.

    python benchmarks/run_library.py --root runs/library                 # run every CPU study twice, then the table
    python benchmarks/run_library.py --root runs/library --only clipping # one study
    python benchmarks/run_library.py --root runs/library --table-only --write studies/README.md

Each study runs through the real CLI, at its default budget: first as itself (seeds 0..), then as its
first replication (`sweep run ... --replicate`: seed s runs as s + 10000, so the two sets share no seed).
A study already run is resumed, not repeated. The wall time of each run is kept in ROOT/library.json.

The table: study, the sentence it tests (the first quote in its header), claim, the verdict on each seed
set, the effect with its interval, n and MDE on each, its profile (CPU, or GPU for files under a gpu
folder) and the wall time of each run. `--write FILE` replaces the table between the markers
`<!-- library-table -->` and `<!-- /library-table -->` in FILE. The exit status is 1 when a claim is
SUPPORTED on one seed set and CONTRADICTED on the other.

Studies under studies/large/ are not run here: larger budget profiles, for a GPU or a cluster (their
files say what they cost).
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from sweep.results import load_results, related_studies  # noqa: E402
from sweep.spec import load  # noqa: E402
from sweep.store import open_store  # noqa: E402
from sweep.vocab import Size, Status, interval, num, signed  # noqa: E402

MARK_START, MARK_END = "<!-- library-table -->", "<!-- /library-table -->"
OPPOSITE = {Status.SUPPORTED, Status.CONTRADICTED}


def run_study(path: Path, root: Path, replicate: bool) -> float:
    """One `sweep run` of the study (or of its replication); its wall time in seconds."""
    command = [str(Path(sys.executable).parent / "sweep"), "run", str(path), "--root", str(root)]
    if replicate:
        command.append("--replicate")
    print("$", " ".join(command), flush=True)
    started = time.perf_counter()
    subprocess.run(command, check=True)
    return time.perf_counter() - started


def cell(result, status: str = "not run") -> dict[str, str]:
    """The verdict of one seed set as table cells (`status` when there is none: not run, no rule)."""
    if result is None:
        return {"verdict": status, "effect": "-", "n": "-", "mde": "-", "size": "-"}
    e = result.estimate
    effect = "-" if e is None else f"{signed(e.effect)} {interval(e.low, e.high)}"
    return {
        "verdict": result.status.value,
        "effect": effect,
        "n": str(result.n),
        "mde": "-" if e is None else num(e.mde, 3),
        "size": _SIZE_WORDS[result.size] if result.size else "-",
    }


# the "at least min_effect" column: yes, no (shown smaller), or may be smaller (the interval reaches inside)
_SIZE_WORDS = {Size.AT_LEAST: "yes", Size.MAY_BE_SMALLER: "may be smaller", Size.SMALLER: "no"}


def table(studies: list[Path], root: Path) -> tuple[str, list[str]]:
    """The markdown table, and the studies whose two seed sets disagree in direction."""
    store = open_store(root, None)
    times = _times(root)
    stored = set(store.study_names()) if store.exists() else set()
    lines = [
        "| study | the sentence it tests | claim | verdict, seeds 0.. | verdict, seeds 10000.. | at least min_effect "
        "| effect [CI], 0.. | effect [CI], 10000.. | n | MDE | profile | wall time |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    clashes = []
    for path in studies:
        study = load(path)
        first = second = None
        if study.verdict is not None and study.name in stored:
            optuna_study = store.load_study(study.name)
            first = load_results(optuna_study).verdict
            replications = [r for r in related_studies(store, study.name) if r.role == "replication 1"]
            second = replications[0].verdict if replications else None
        missing = "not run" if study.verdict is not None else "no rule"  # a search: no verdict, but its time
        a, b = cell(first, missing), cell(second, missing)
        if {a["verdict"], b["verdict"]} == {s.value for s in OPPOSITE}:
            clashes.append(study.name)
        wall = " / ".join(f"{times[key] / 60:.1f} min" for key in (study.name, f"{study.name}-rep1") if key in times)
        lines.append(
            f"| `{path.name}` | {cited(path)} | {study.claim} | {a['verdict']} | {b['verdict']} | "
            f"{a['size']} / {b['size']} | {a['effect']} | {b['effect']} | {a['n']} / {b['n']} | "
            f"{a['mde']} / {b['mde']} | {profile(path)} | {wall or '-'} |"
        )
    total = sum(times.values())
    second_set = sum(v for k, v in times.items() if k.endswith("-rep1"))
    lines.append("")
    lines.append(
        f"Total wall time of these runs: {total / 60:.1f} min ({len(times)} runs): seeds 0.. "
        f"{(total - second_set) / 60:.1f} min, seeds 10000.. {second_set / 60:.1f} min."
    )
    return "\n".join(lines), clashes


def cited(path: Path, width: int = 90) -> str:
    """The first quoted sentence of a study file's header comment (the note or paper line its claim tests),
    cut to `width` characters; "-" when the header quotes none."""
    header = []
    for line in path.read_text().splitlines():
        if not line.startswith("#"):
            break
        header.append(line.lstrip("#").strip())
    found = re.search(r'"([^"]+)"', " ".join(header))
    if found is None:
        return "-"
    text = found.group(1).replace("|", "/")
    return text if len(text) <= width else text[: width - 3].rstrip() + "..."


def profile(path: Path) -> str:
    """Where a study is meant to run: a GPU for the files under a `gpu` folder, else a laptop's CPU."""
    return "GPU" if "gpu" in path.parent.parts else "CPU"


def _times(root: Path) -> dict[str, float]:
    path = root / "library.json"
    return json.loads(path.read_text()) if path.is_file() else {}


def main() -> int:
    return main_args(sys.argv[1:])


def main_args(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=REPO / "runs" / "library")
    parser.add_argument("--studies", type=Path, default=REPO / "studies")
    parser.add_argument("--only", nargs="*", help="study file stems to run (default: all)")
    parser.add_argument("--table-only", action="store_true", help="run nothing; build the table from storage")
    parser.add_argument("--one-set", action="store_true", help="run each study once (seeds 0..), no replication")
    parser.add_argument("--write", type=Path, help="replace the table between the markers in this file")
    args = parser.parse_args(argv)

    studies = sorted(p for p in args.studies.glob("*.yaml") if not args.only or p.stem in args.only)
    args.root.mkdir(parents=True, exist_ok=True)
    if not args.table_only:
        for path in studies:
            name = load(path).name
            for replicate, key in ((False, name), (True, f"{name}-rep1"))[: 1 if args.one_set else 2]:
                seconds = run_study(path, args.root, replicate)
                times = _times(args.root)
                times[key] = times.get(key, 0.0) + seconds  # a resumed run adds to the time already spent
                (args.root / "library.json").write_text(json.dumps(times, indent=1))
    text, clashes = table(sorted(args.studies.glob("*.yaml")), args.root)
    print(text)
    if args.write:
        document = args.write.read_text()
        head, rest = document.split(MARK_START, 1)
        _, tail = rest.split(MARK_END, 1)
        args.write.write_text(f"{head}{MARK_START}\n{text}\n{MARK_END}{tail}")
    if clashes:
        print(f"SUPPORTED on one seed set and CONTRADICTED on the other: {', '.join(clashes)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
