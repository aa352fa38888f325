"""Draws the README's picture of the Grafana dashboard (deploy/dashboard-demo.png) from
one Prometheus scrape of the gateway, the demo's final one:

    bash scripts/demo.sh --metrics-out /tmp/demo-metrics.prom
    .venv/bin/pip install matplotlib    # once; not needed by the tests
    .venv/bin/python deploy/tests/render_dashboard.py /tmp/demo-metrics.prom deploy/dashboard-demo.png

A scrape is one instant, so each panel shows the counters' totals where Grafana plots
their rates over time; the panels and their titles are the dashboard's
(deploy/chart/modelgate/dashboards/modelgate.json). The demo runs no Istio, so Istio's
panels are left as a note. Run by hand, not by the tests.
"""

from __future__ import annotations

import re
import sys
from collections import defaultdict
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

LINE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)$")
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')
COLORS = {"allowed": "#56a64b", "denied": "#e02f44", "audit_denied": "#ff9830"}
PALETTE = ["#5794f2", "#ff9830", "#b877d9", "#56a64b", "#f2cc0c", "#8ab8ff", "#e02f44", "#73bf69"]


def parse(text: str) -> list[tuple[str, dict[str, str], float]]:
    samples = []
    for line in text.splitlines():
        m = LINE.match(line.strip())
        if not m or line.startswith("#"):
            continue
        samples.append((m.group(1), dict(LABEL.findall(m.group(2) or "")), float(m.group(3))))
    return samples


def of(samples, name):
    return [(labels, value) for n, labels, value in samples if n == name]


def style(ax, title):
    ax.set_title(title, loc="left", fontsize=10, color="#d8d9da")
    ax.set_facecolor("#181b1f")
    ax.tick_params(colors="#c7d0d9", labelsize=8)
    for spine in ax.spines.values():
        spine.set_color("#2c3235")
    ax.grid(axis="x", color="#2c3235", linewidth=0.6)
    ax.set_axisbelow(True)


def decisions(ax, samples):
    style(ax, "Requests per model by decision")
    per = defaultdict(lambda: defaultdict(float))
    for labels, value in of(samples, "modelgate_requests_total"):
        per[labels["model"]][labels["decision"]] += value
    models = sorted(per)
    left = [0.0] * len(models)
    for decision in ("allowed", "audit_denied", "denied"):
        values = [per[m][decision] for m in models]
        ax.barh(models, values, left=left, color=COLORS[decision], label=decision)
        left = [a + b for a, b in zip(left, values)]
    ax.set_xscale("symlog", linthresh=10)
    ax.legend(fontsize=7, facecolor="#181b1f", labelcolor="#c7d0d9", edgecolor="#2c3235")


def denials(ax, samples):
    style(ax, "Denials by reason")
    per = defaultdict(float)
    for labels, value in of(samples, "modelgate_requests_total"):
        if labels["decision"] in ("denied", "audit_denied"):
            suffix = " (audit)" if labels["decision"] == "audit_denied" else ""
            per[f"{labels['model']} {labels['reason']}{suffix}"] += value
    names = sorted(per, key=per.get)
    ax.barh(names, [per[n] for n in names], color=[COLORS["audit_denied"] if "(audit)" in n else COLORS["denied"] for n in names])
    ax.tick_params(axis="y", labelsize=7)


def split(ax, samples):
    style(ax, "Predictor split per model (share of routed requests)")
    per = defaultdict(lambda: defaultdict(float))
    for labels, value in of(samples, "modelgate_routed_total"):
        per[labels["model"]][labels["predictor"]] += value
    models = sorted(per)
    for i, model in enumerate(models):
        total = sum(per[model].values())
        left = 0.0
        for j, (predictor, value) in enumerate(sorted(per[model].items())):
            share = value / total
            ax.barh(model, share, left=left, color=PALETTE[(i * 2 + j) % len(PALETTE)])
            if share > 0.04:
                ax.text(left + share / 2, i, f"{predictor} {share:.0%}", ha="center", va="center", fontsize=7, color="#111217")
            left += share
    ax.set_xlim(0, 1)
    ax.xaxis.set_major_formatter(matplotlib.ticker.PercentFormatter(1.0))


def choices(ax, samples):
    style(ax, "Predictor choices by how they were made")
    per = defaultdict(float)
    for labels, value in of(samples, "modelgate_routed_total"):
        per[f"{labels['model']} {labels['predictor']} {labels['reason']}"] += value
    names = sorted(per)
    ax.barh(names, [per[n] for n in names], color="#5794f2")
    ax.set_xscale("symlog", linthresh=10)
    ax.tick_params(axis="y", labelsize=7)


def configuration(ax, samples):
    style(ax, "Configuration loads and refusals; models in force")
    loads = defaultdict(float)
    for labels, value in of(samples, "modelgate_config_loads_total"):
        loads[labels["result"]] += value
    models = max((v for _, v in of(samples, "modelgate_config_models")), default=0)
    passthrough = sum(v for _, v in of(samples, "modelgate_passthrough_total"))
    rows = [
        ("loads accepted", loads.get("accepted", 0), COLORS["allowed"]),
        ("loads refused", loads.get("refused", 0), COLORS["denied"]),
        ("models in force", models, "#5794f2"),
        ("passthrough requests", passthrough, "#8e8e8e"),
    ]
    ax.barh([r[0] for r in rows], [r[1] for r in rows], color=[r[2] for r in rows])
    for i, (_, value, _) in enumerate(rows):
        ax.text(value, i, f" {value:g}", va="center", fontsize=8, color="#c7d0d9")


def istio(ax):
    style(ax, "Latency and error rate per model and predictor (Istio)")
    ax.set_xticks([])
    ax.set_yticks([])
    ax.grid(False)
    ax.text(
        0.5,
        0.5,
        "istio_request_duration_milliseconds (p50/p95/p99)\nand istio_requests_total (5xx share)\nper predictor Service: not in the demo, which runs no Istio",
        ha="center",
        va="center",
        fontsize=8,
        color="#8e8e8e",
        transform=ax.transAxes,
    )


def main() -> None:
    if len(sys.argv) != 3:
        sys.exit("usage: render_dashboard.py SCRAPE.prom OUT.png")
    samples = parse(Path(sys.argv[1]).read_text())
    if not of(samples, "modelgate_requests_total"):
        sys.exit(f"{sys.argv[1]} has no modelgate_requests_total: not a scrape of the demo's gateway")
    fig, axes = plt.subplots(3, 2, figsize=(12, 9), dpi=80)
    fig.patch.set_facecolor("#111217")
    decisions(axes[0][0], samples)
    denials(axes[0][1], samples)
    split(axes[1][0], samples)
    choices(axes[1][1], samples)
    configuration(axes[2][0], samples)
    istio(axes[2][1])
    fig.suptitle(
        "modelgate dashboard, drawn from the demo's final scrape (totals; Grafana plots the same queries as rates)",
        color="#d8d9da",
        fontsize=11,
    )
    fig.tight_layout(rect=(0, 0, 1, 0.97))
    fig.savefig(sys.argv[2], facecolor=fig.get_facecolor())


if __name__ == "__main__":
    main()
