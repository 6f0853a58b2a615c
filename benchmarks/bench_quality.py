"""Model quality against the ceiling: oracle, MLP and XGBoost ROC-AUC / PR-AUC on a held-out time split.

The fraud generator draws each label from a known probability (``generate_transactions(...,
with_probability=True)``); scoring the held-out rows with that probability is the oracle, the best
ROC-AUC any model can reach on those rows. The models go through the product's own code path, in this
process (no Ray, no MLflow):

1. generate transactions (the ``fraud`` example), write them as Parquet *without* the probability;
2. ``apply_features(settings, fraud_features(), path)`` then ``feature_frame(...)``: the features stage's
   point-in-time frame (as notebook 02 builds it), and ``split_holdout`` (latest 20 % by time);
3. ``TrainingSpec.from_task(task, frame, project.model_inputs, trainer=...)`` with notebook 03's defaults
   (or ``--epochs`` / ``--rounds``), ``load_training_data`` and the trainer's own fit function
   (``train_model`` for the MLP, ``fit_booster`` for XGBoost), the model written as the job would log it
   and loaded as its pyfunc (``load_unlogged``), which then scores the holdout rows.

State (the feature project) lives under benchmarks/_data/bq_quality; nothing shared is touched.

    .venv/bin/python benchmarks/bench_quality.py [--rows 100000 1000000] [--seeds 0 1 2 3] [--reuse]

One holdout of 100k rows has ~340 positives, so one seed's ROC-AUC has a standard error of ~0.015, half the
target's margin: ``--seeds`` runs one generated dataset per seed and judges the target on the mean gap.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from sklearn.metrics import average_precision_score, roc_auc_score  # noqa: E402

from workbench.config import Settings  # noqa: E402
from workbench.data.examples import EXAMPLES  # noqa: E402
from workbench.data.generator import generate_transactions  # noqa: E402
from workbench.data.task import split_holdout  # noqa: E402
from workbench.features import apply_features, feature_frame, fraud_features  # noqa: E402
from workbench.training import TrainingSpec  # noqa: E402
from workbench.training.export import load_unlogged, write_model_artifacts  # noqa: E402
from workbench.training.frame import load_training_data  # noqa: E402
from workbench.training.loop import train_model  # noqa: E402
from workbench.training.xgb import BOOSTER_FILE, fit_booster, save_bundle  # noqa: E402

STATE = ROOT / "benchmarks" / "_data" / "bq_quality"
TARGET_GAP = 0.03
PROBABILITY = "fraud_probability"


def bench_settings() -> Settings:
    return Settings(project_dir=ROOT, state_dir=STATE, experiment="bq-quality")


def build_frames(settings: Settings, rows: int, seed: int, reuse: bool = False) -> dict[str, Any]:
    """The features stage for ``rows`` generated transactions: (train frame path, holdout frame, inputs)."""
    task = EXAMPLES["fraud"].task
    data = STATE / f"rows_{rows}_seed_{seed}"
    data.mkdir(parents=True, exist_ok=True)
    meta_path = data / "frames.json"
    if reuse and meta_path.is_file():  # the frames of an earlier run with the same rows and seed
        meta = json.loads(meta_path.read_text())
        return {**meta, "task": task, "frame_path": data / "train_frame.parquet",
                "holdout": pd.read_parquet(data / "holdout_frame.parquet"),
                "train": pd.read_parquet(data / "train_frame.parquet")}
    began = time.perf_counter()
    transactions = generate_transactions(rows, seed=seed, with_probability=True)
    truth = transactions[["transaction_id", PROBABILITY]]
    path = data / "transactions.parquet"
    transactions.drop(columns=[PROBABILITY]).to_parquet(path, index=False)
    generated_s = time.perf_counter() - began
    began = time.perf_counter()
    declaration = fraud_features(name=f"bq_fraud_{rows}")
    project = apply_features(settings, declaration, path)
    frame = feature_frame(settings, project.name, path, label=task.label, keep=["transaction_id"])
    features_s = time.perf_counter() - began
    frame = frame.merge(truth, on="transaction_id", how="left", validate="one_to_one")
    assert frame[PROBABILITY].notna().all() and len(frame) == rows
    train, holdout, rule = split_holdout(frame, task, 0.2, seed=0)
    frame_path = data / "train_frame.parquet"
    train.drop(columns=[PROBABILITY]).to_parquet(frame_path, index=False)
    holdout.to_parquet(data / "holdout_frame.parquet", index=False)
    meta = {"rule": rule, "inputs": list(project.model_inputs), "generated_s": generated_s, "features_s": features_s}
    meta_path.write_text(json.dumps(meta))
    return {**meta, "task": task, "frame_path": frame_path, "holdout": holdout, "train": train}


def scores(y: np.ndarray, p: np.ndarray) -> dict[str, float]:
    return {"roc_auc": float(roc_auc_score(y, p)), "pr_auc": float(average_precision_score(y, p))}


def train_mlp(spec: TrainingSpec) -> tuple[Any, str]:
    """The MLP as the job trains it (``train_model``), returned as its pyfunc."""
    import torch

    torch.set_num_threads(max(1, int(spec.cpus_per_worker)))
    data = load_training_data(spec)
    states: list[Any] = []
    train_model(spec, data, lambda state, metrics: states.append(state))
    folder = Path(tempfile.mkdtemp(prefix="bq-mlp-"))
    return load_unlogged(write_model_artifacts(states[-1], folder)), f"{len(states)} epochs run"


def train_xgb(spec: TrainingSpec) -> tuple[Any, str]:
    """The trees as the job's Ray task trains them (``fit_booster``), returned as its pyfunc."""
    data = load_training_data(spec, mode="ordinal")
    booster = fit_booster(spec, data)
    folder = save_bundle(Path(tempfile.mkdtemp(prefix="bq-xgb-")), booster, data, spec)
    model = load_unlogged({"booster": folder / BOOSTER_FILE, "meta": folder / "meta.json"})
    return model, f"{booster.num_boosted_rounds()} rounds kept"


def run(settings: Settings, rows: int, seed: int, args: argparse.Namespace) -> list[dict[str, Any]]:
    built = build_frames(settings, rows, seed, args.reuse)
    holdout = built["holdout"]
    task = built["task"]
    y = (holdout[task.label] == 1).to_numpy().astype(np.int64)
    reused = " (reused)" if args.reuse else ""
    print(f"\n{rows:,} rows, seed {seed}: features {built['features_s']:.1f} s{reused}; holdout {len(holdout):,} rows "
          f"({built['rule']}), fraud rate train {built['train'][task.label].mean():.4f} / holdout {y.mean():.4f}; "
          f"inputs {built['inputs']}", flush=True)
    out = [{"rows": rows, "seed": seed, "model": "oracle (true P)", **scores(y, holdout[PROBABILITY].to_numpy()),
            "train_s": 0.0}]
    common = {"seed": seed, "experiment": "bq-quality", "cpus_per_worker": float(args.threads)}
    specs = {
        "mlp": TrainingSpec.from_task(task, built["frame_path"], built["inputs"], trainer="mlp",
                                      hidden_sizes=list(args.hidden), lr=args.lr, batch_size=args.batch_size,
                                      epochs=args.epochs, **common),
        "xgboost": TrainingSpec.from_task(task, built["frame_path"], built["inputs"], trainer="xgboost",
                                          n_estimators=args.rounds, max_depth=args.max_depth,
                                          learning_rate=args.learning_rate, min_child_weight=args.min_child_weight,
                                          subsample=args.subsample, colsample_bytree=args.colsample,
                                          **({"early_stopping_rounds": args.early_stopping}
                                             if args.early_stopping is not None else {}), **common),
    }
    for name, spec in specs.items():
        if name not in args.trainers:
            continue
        began = time.perf_counter()
        model, ran = train_mlp(spec) if name == "mlp" else train_xgb(spec)
        train_s = time.perf_counter() - began
        p = np.asarray(model.predict(None, holdout[list(spec.feature_columns)]), dtype=np.float64)
        row = {"rows": rows, "seed": seed, "model": name, **scores(y, p), "train_s": train_s,
               "mean_score": float(p.mean()), "hyper": f"{_hyper(spec)} ({ran})"}
        out.append(row)
        print(f"  {name}: roc_auc {row['roc_auc']:.4f} pr_auc {row['pr_auc']:.4f} in {train_s:.1f} s "
              f"(mean score {row['mean_score']:.4f})", flush=True)
    return out


def _hyper(spec: TrainingSpec) -> str:
    if spec.trainer == "mlp":
        return f"{list(spec.hidden_sizes)}, {spec.epochs} epochs, lr {spec.lr}, batch {spec.batch_size}"
    return (f"{spec.n_estimators} rounds, depth {spec.max_depth}, eta {spec.learning_rate}, min_child_weight "
            f"{spec.min_child_weight}, subsample {spec.subsample}, colsample {spec.colsample_bytree}, early stopping "
            f"{spec.early_stopping_rounds or 'off'}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--trainers", nargs="+", default=["mlp", "xgboost"])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0],
                        help="one dataset (generator seed, trainer seed) each; the target is judged on the mean gap")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--reuse", action="store_true", help="reuse the frames an earlier run built (same rows, seed)")
    # notebook 03's defaults
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--hidden", type=int, nargs="+", default=[64, 32])
    parser.add_argument("--lr", type=float, default=0.003)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--rounds", type=int, default=600)
    parser.add_argument("--max-depth", type=int, default=3)
    parser.add_argument("--learning-rate", type=float, default=0.05)
    parser.add_argument("--min-child-weight", type=float, default=1.0)
    parser.add_argument("--subsample", type=float, default=0.8)
    parser.add_argument("--colsample", type=float, default=0.8)
    parser.add_argument("--early-stopping", type=int, default=None, help="default: the spec's default")
    args = parser.parse_args()

    settings = bench_settings()
    STATE.mkdir(parents=True, exist_ok=True)
    print(f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f} at start")
    rows = [r for n in args.rows for seed in args.seeds for r in run(settings, n, seed, args)]
    print(f"load average {os.getloadavg()[0]:.2f} at end")
    print("\n| rows | seed | model | ROC-AUC | PR-AUC | gap to oracle (ROC) | train s | hyper-parameters |")
    print("|---:|---:|---|---:|---:|---:|---:|---|")
    for r in rows:
        oracle = next(o for o in rows if o["rows"] == r["rows"] and o["seed"] == r["seed"])
        print(f"| {r['rows']:,} | {r['seed']} | {r['model']} | {r['roc_auc']:.4f} | {r['pr_auc']:.4f} | "
              f"{oracle['roc_auc'] - r['roc_auc']:+.4f} | {r['train_s']:.1f} | {r.get('hyper', '')} |")
    print(f"\nmean over seeds {args.seeds}; the target: the better trainer within {TARGET_GAP} ROC-AUC of the oracle")
    for n in args.rows:
        gaps: dict[str, list[float]] = {}
        ratios: dict[str, list[tuple[float, float]]] = {}
        for seed in args.seeds:
            group = [r for r in rows if r["rows"] == n and r["seed"] == seed]
            oracle = group[0]
            for r in group[1:]:
                gaps.setdefault(r["model"], []).append(oracle["roc_auc"] - r["roc_auc"])
                ratio = (r["roc_auc"] / oracle["roc_auc"], r["pr_auc"] / oracle["pr_auc"])
                ratios.setdefault(r["model"], []).append(ratio)
        if not gaps:
            continue
        for model, values in gaps.items():
            roc, pr = np.mean([a for a, _ in ratios[model]]), np.mean([b for _, b in ratios[model]])
            spread = f" (per seed {', '.join(f'{g:.4f}' for g in values)})" if len(values) > 1 else ""
            print(f"  {n:,} {model}: mean gap {np.mean(values):.4f}{spread}; {roc:.3f} of the oracle's ROC-AUC, "
                  f"{pr:.3f} of its PR-AUC")
        best = min(gaps, key=lambda m: float(np.mean(gaps[m])))
        gap = float(np.mean(gaps[best]))
        print(f"  {n:,}: best {best} mean gap {gap:.4f} -> {'MET' if gap <= TARGET_GAP else 'MISSED'}")


if __name__ == "__main__":
    pd.set_option("display.width", 160)
    main()
