"""The static HTML leaderboard page (releo_bench.leaderboard.html): rendered from realistic
boards, checked as text and, where a Chromium binary is installed, in a real headless browser
(the DOM it builds and a screenshot)."""

from __future__ import annotations

import hashlib
import math
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from releo_bench.leaderboard.html import (LeaderboardPageError, default_command,
                                          format_fraction, format_score, format_value,
                                          write_html)

# -- a generator of realistic boards (format releo-leaderboard/1) ---------------------------

FAMILIES = {"regression": {"accuracy": "rmse", "calibration": "miscalibration_area",
                           "proper_score": "crps"},
            "classification": {"accuracy": "balanced_accuracy", "calibration": "ece",
                               "proper_score": "log_loss"}}
METRICS = {  # name: (family, direction, ideal)
    "regression": {"rmse": ("accuracy", "lower", 0.0), "mae": ("accuracy", "lower", 0.0),
                   "miscalibration_area": ("calibration", "lower", 0.0),
                   "picp_90": ("calibration", "target", 0.9),
                   "crps": ("proper_score", "lower", 0.0)},
    "classification": {"balanced_accuracy": ("accuracy", "higher", 1.0),
                       "ece": ("calibration", "lower", 0.0),
                       "log_loss": ("proper_score", "lower", 0.0),
                       "brier": ("proper_score", "lower", 0.0)},
}
# task, version, kind, the baseline's metric values at label fraction 1
TASKS = [
    ("lai", 1, "regression", {"rmse": 1.12, "mae": 0.86, "miscalibration_area": 0.11,
                              "picp_90": 0.74, "crps": 0.63}),
    ("cab", 2, "regression", {"rmse": 9.8, "mae": 7.6, "miscalibration_area": 0.09,
                              "picp_90": 0.78, "crps": 5.4}),
    ("eurosat-ms", 1, "classification", {"balanced_accuracy": 0.58, "ece": 0.07,
                                         "log_loss": 1.25, "brier": 0.55}),
    ("land-cover", 1, "classification", {"balanced_accuracy": 0.49, "ece": 0.06,
                                         "log_loss": 1.41, "brier": 0.62}),
]
NO_BASELINE_TASK = ("algae-blooms", 1, "classification",
                    {"balanced_accuracy": 0.6, "ece": 0.05, "log_loss": 0.9, "brier": 0.5})
# model: (version, accuracy skill, calibration skill); skill 0 = the baseline, 1 = ideal
MODELS = {
    "raw": ("builtin", 0.0, 0.0),
    "alise": ("1.0", 0.45, 0.35),
    "presto": ("1.0", 0.42, 0.30),
    "galileo-nano": ("0.1", 0.20, 0.22),
    "sharp-vit": ("2.1", 0.62, -1.3),  # accurate but badly calibrated (over-confident)
}
ACCURATE_MISCALIBRATED = "sharp-vit"
MAIN_SCORE = {"land-cover": "brier"}  # elsewhere the family's proper score


def _seed_values(base: float, ideal: float, skill: float, lf: float, seeds: int,
                 rng: np.random.Generator) -> list[float]:
    b = base + 0.25 * (1.0 - lf) * (base - ideal)  # fewer labels: a worse baseline
    k = skill * (1.0 - 0.3 * (1.0 - lf))           # and a smaller gain over it
    mean = b + k * (ideal - b)
    return [float(mean + rng.normal(0, 0.03) * abs(ideal - b)) for _ in range(seeds)]


def _summary(values: list[float], family: str, direction: str, ideal: float) -> dict:
    x = np.asarray(values)
    n = x.size
    mean = float(x.mean())
    std = float(x.std(ddof=1)) if n > 1 else 0.0
    half = float(stats.t.ppf(0.975, n - 1) * std / math.sqrt(n)) if n > 1 else 0.0
    return {"mean": mean, "ci_low": mean - half, "ci_high": mean + half, "std": std, "n": n,
            "direction": direction, "ideal": ideal, "family": family, "per_seed": values}


def make_board(models: dict | None = None, fractions=(1.0, 0.1), seeds: int = 3,
               no_baseline_task: bool = True, suite: dict | None = None) -> dict:
    """A board as `releo-bench leaderboard --format json` writes it, with seed-aggregated
    metrics, normalised scores, IQM + stratified-bootstrap intervals, ranks and ties, and the
    writer's extra fields (in_overall, train_task, probes, label, excluded, notes,
    aggregation). With ``no_baseline_task``, also a task nobody ran the baseline on and a
    run of alise on another version of lai (a separate group, not in the overall scores)."""
    models = dict(MODELS if models is None else models)
    rng = np.random.default_rng(42)
    groups = []
    tasks = list(TASKS) + ([NO_BASELINE_TASK] if no_baseline_task else [])
    for task, version, kind, base in tasks:
        data_hash = "sha256:" + hashlib.sha256(f"{task}-{version}".encode()).hexdigest()
        for lf in fractions:
            for model, (mversion, acc, cal) in models.items():
                if task == NO_BASELINE_TASK[0] and (model == "raw" or lf != fractions[0]):
                    continue
                skills = {"accuracy": acc, "calibration": cal,
                          "proper_score": 0.6 * acc + 0.4 * cal}
                metrics = {}
                for name, (family, direction, ideal) in METRICS[kind].items():
                    vals = _seed_values(base[name], ideal, skills[family], lf, seeds, rng)
                    metrics[name] = _summary(vals, family, direction, ideal)
                groups.append({
                    "model": model, "model_version": mversion, "weights_sha256": None,
                    "task": task, "task_version": version, "data_hash": data_hash,
                    "target_kind": kind, "probe": "ridge" if kind == "regression" else "logistic",
                    "label_fraction": lf, "seeds": list(range(seeds)),
                    "run_ids": [hashlib.md5(f"{model}{task}{lf}{s}".encode()).hexdigest()
                                for s in range(seeds)],
                    "main_score": MAIN_SCORE.get(task, FAMILIES[kind]["proper_score"]),
                    "metrics": metrics, "train_task": None, "in_overall": True,
                    "normalised": {}})
    if no_baseline_task:  # alise on lai v2 (other test data): shown, never averaged in
        other = {**next(g for g in groups if g["model"] == "alise" and g["task"] == "lai"),
                 "task_version": 2, "in_overall": False,
                 "data_hash": "sha256:" + hashlib.sha256(b"lai-2").hexdigest()}
        groups.append(other)
    # normalisation against raw on the same (task, version, probe, label fraction)
    base_mean = {(g["task"], g["task_version"], g["probe"], g["label_fraction"], f):
                 g["metrics"][FAMILIES[g["target_kind"]][f]]["mean"]
                 for g in groups if g["model"] == "raw" for f in FAMILIES[g["target_kind"]]}

    def normalise(g: dict, family: str, value: float) -> float | None:
        b = base_mean.get((g["task"], g["task_version"], g["probe"], g["label_fraction"], family))
        if b is None:
            return None
        ideal = g["metrics"][FAMILIES[g["target_kind"]][family]]["ideal"]
        return (value - b) / (ideal - b)  # value: a float or an array of bootstrap means

    for g in groups:
        for f, name in FAMILIES[g["target_kind"]].items():
            g["normalised"][f] = normalise(g, f, g["metrics"][name]["mean"])
    overall = []
    boot = np.random.default_rng(0)
    for lf in fractions:
        rows = []
        for model, (mversion, _, _) in models.items():
            mine = [g for g in groups if g["model"] == model and g["label_fraction"] == lf
                    and g["in_overall"]]
            scores = {}
            for f in ("accuracy", "calibration", "proper_score"):
                kept = [g for g in mine if g["normalised"][f] is not None]
                vals = [g["normalised"][f] for g in kept]
                # stratified bootstrap: seeds resampled within each task, B = 500
                per_task = []
                for g in kept:
                    seed_vals = np.asarray(g["metrics"][FAMILIES[g["target_kind"]][f]]["per_seed"])
                    means = boot.choice(seed_vals, (500, seed_vals.size)).mean(axis=1)
                    per_task.append(normalise(g, f, means))
                reps = stats.trim_mean(np.stack(per_task, axis=1), 0.25, axis=1)
                scores[f] = {"iqm": float(stats.trim_mean(vals, 0.25)),
                             "ci_low": float(np.percentile(reps, 2.5)),
                             "ci_high": float(np.percentile(reps, 97.5))}
            used = sorted({g["task"] for g in mine if g["normalised"]["proper_score"] is not None})
            excluded = {f: sorted(g["task"] for g in mine if g["normalised"][f] is None)
                        for f in scores}
            rows.append({"model": model, "model_version": mversion, "weights_sha256": None,
                         "label_fraction": lf,
                         "probes": {"classification": "logistic", "regression": "ridge"},
                         "n_tasks": len(used), "tasks": used, "scores": scores,
                         "excluded": {f: t for f, t in excluded.items() if t}, "label": model})
        for r in rows:
            p = r["scores"]["proper_score"]
            r["rank"] = 1 + sum(o["scores"]["proper_score"]["ci_low"] > p["ci_high"] for o in rows)
            r["tied_with"] = [o["model"] for o in rows if o is not r
                              and o["scores"]["proper_score"]["ci_low"] <= p["ci_high"]
                              and p["ci_low"] <= o["scores"]["proper_score"]["ci_high"]]
        overall += rows
    return {"format": "releo-leaderboard/1", "generated": "2025-11-24T18:00:00Z",
            "source": "http://bench:***@mlflow.example.org:5000",
            "suite": suite if suite is not None else {"name": "releo-v1", "version": 1},
            "normalisation": {"baseline_model": "raw", "description":
                              "(m - b) / (ideal - b) per task on the family's metric, b = the "
                              "raw baseline's seed mean."},
            "families": FAMILIES,
            "aggregation": {"across_tasks": "IQM (25 % trimmed mean)",
                            "interval": "stratified bootstrap over seeds", "n_boot": 500,
                            "seed": 0, "level": 0.95},
            "groups": groups, "overall": overall,
            "notes": [f"no 'raw' baseline run for {NO_BASELINE_TASK[0]} v1 (logistic, 100 % "
                      "labels): its normalised scores are null and it is left out of the "
                      "overall scores"] if no_baseline_task else []}


# -- a small DOM tree from HTML text (the page itself or Chromium's --dump-dom) ---------------

_VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source",
         "track", "wbr"}


class Node:
    def __init__(self, tag: str, attrs: dict, parent: "Node | None" = None):
        self.tag, self.attrs, self.parent, self.children = tag, attrs, parent, []

    @property
    def classes(self) -> set[str]:
        return set((self.attrs.get("class") or "").split())

    def text(self) -> str:
        return "".join(c if isinstance(c, str) else c.text() for c in self.children)

    def find_all(self, tag: str, cls: str | None = None) -> list["Node"]:
        out = []
        for c in self.children:
            if isinstance(c, Node):
                if c.tag == tag and (cls is None or cls in c.classes):
                    out.append(c)
                out += c.find_all(tag, cls)
        return out


class _Builder(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.root = Node("#root", {})
        self.cur = self.root

    def handle_starttag(self, tag, attrs):
        node = Node(tag, dict(attrs), self.cur)
        self.cur.children.append(node)
        if tag not in _VOID:
            self.cur = node

    def handle_endtag(self, tag):
        n = self.cur
        while n is not None and n.tag != tag:
            n = n.parent
        if n is not None and n.parent is not None:
            self.cur = n.parent

    def handle_data(self, data):
        self.cur.children.append(data)


def parse(text: str) -> Node:
    b = _Builder()
    b.feed(text)
    b.close()
    return b.root


def _norm(s: str) -> str:
    return re.sub(r"\s+", " ", s).strip()


# -- Chromium ---------------------------------------------------------------------------------

def _find_chromium() -> str | None:
    """The first Chromium on PATH that runs (``--version``); a stub such as Ubuntu's
    snap-installer wrapper does not count."""
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if not path:
            continue
        try:
            done = subprocess.run([path, "--version"], capture_output=True, text=True,
                                  timeout=30)
        except (OSError, subprocess.TimeoutExpired):
            continue
        if done.returncode == 0 and re.search(r"chrom", done.stdout, re.I):
            return path
    return None


CHROMIUM = _find_chromium()
NO_CHROMIUM = ("no working headless Chromium on PATH (looked for chromium, chromium-browser, "
               "google-chrome): the page is checked in a real browser only where one is "
               "installed; the text-level tests still run")
needs_chromium = pytest.mark.skipif(CHROMIUM is None, reason=NO_CHROMIUM)


def _chromium(args: list[str], profile: Path) -> str:
    cmd = [CHROMIUM, "--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run",
           "--no-default-browser-check", "--disable-extensions", "--hide-scrollbars",
           "--disable-dev-shm-usage", f"--user-data-dir={profile}", *args]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=90)
    assert done.returncode == 0, f"chromium failed ({done.returncode}): {done.stderr[-2000:]}"
    return done.stdout


# -- fixtures -------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def rendered(tmp_path_factory) -> tuple[dict, Path]:
    board = make_board()
    return board, write_html(board, tmp_path_factory.mktemp("page"))


@pytest.fixture(scope="module")
def dom(rendered, tmp_path_factory) -> Node:
    if CHROMIUM is None:
        pytest.skip(NO_CHROMIUM)
    _, index = rendered
    text = _chromium(["--dump-dom", index.resolve().as_uri()], tmp_path_factory.mktemp("prof"))
    assert "<table" in text, text[:500]
    return parse(text)


def _overall_tables(root: Node) -> list[Node]:
    return root.find_all("table", "overall")


def _row_of(table: Node, model: str) -> Node:
    rows = [tr for tr in table.find_all("tr") if tr.attrs.get("data-model") == model]
    assert len(rows) == 1, f"{model}: {len(rows)} rows"
    return rows[0]


def _cells(tr: Node) -> list[Node]:
    return [c for c in tr.children if isinstance(c, Node) and c.tag in ("td", "th")]


def _columns(table: Node) -> list[str]:
    """Column titles: the header cells' first text line (the metric name is on the next)."""
    head = table.find_all("thead")[0].find_all("th")
    return [_norm(next(c for c in th.children if isinstance(c, str))) for th in head]


def _by_column(table: Node, tr: Node) -> dict[str, Node]:
    return dict(zip(_columns(table), _cells(tr), strict=True))


# -- the page in Chromium -----------------------------------------------------------------------

@needs_chromium
def test_overall_tables_in_browser(rendered, dom):
    board, _ = rendered
    tables = _overall_tables(dom)
    assert len(tables) == 2  # label fractions 1.0 and 0.1
    for table, lf in zip(tables, (1.0, 0.1)):
        assert f"label fraction {format_fraction(lf)}" in _norm(table.find_all("caption")[0].text())
        assert _columns(table) == ["Rank", "Model", "Probes", "Tasks", "Accuracy",
                                   "Calibration", "Proper score", "Notes"]
        rows = [r for r in board["overall"] if r["label_fraction"] == lf]
        body_rows = table.find_all("tbody")[0].find_all("tr")
        assert len(body_rows) == len(MODELS)
        shown = [_norm(_by_column(table, tr)["Rank"].text()) for tr in body_rows]
        assert [int(s.lstrip("=")) for s in shown] == sorted(r["rank"] for r in rows)
        for r in rows:
            cells = _by_column(table, _row_of(table, r["model"]))
            # a rank whose interval overlaps another model's is shown as =n (as in the Markdown)
            assert _norm(cells["Rank"].text()) == (f"={r['rank']}" if r["tied_with"]
                                                   else str(r["rank"]))
            assert _norm(cells["Model"].text()).startswith(f"{r['model']} {r['model_version']}")
            assert _norm(cells["Probes"].text()) == "logistic, ridge"
            assert _norm(cells["Tasks"].text()) == str(r["n_tasks"])
            for family in ("accuracy", "calibration", "proper_score"):
                cell = cells[family.replace("_", " ").capitalize()]
                s = r["scores"][family]
                text = _norm(cell.text())
                assert text.startswith(format_score(s["iqm"])), (family, text)
                assert (f"[{format_score(s['ci_low'])}, {format_score(s['ci_high'])}]"
                        in text)
                assert ("worse-than-baseline" in cell.classes) == (s["iqm"] < 0)
            for other in r["tied_with"]:
                assert other in cells["Notes"].text()
    assert any(r["tied_with"] for r in board["overall"]), "the board should contain a tie"
    assert "=1" in [_norm(_cells(tr)[0].text()) for t in tables for tr in t.find_all("tr")]
    # what is left out of the overall scores, and why
    text = _norm(dom.text())
    assert "algae-blooms v1 (data " in text.split("Left out of the overall scores")[1][:300]
    assert "lai v2 (data " in text.split("Shown per task only")[1][:300]


@needs_chromium
def test_accurate_but_miscalibrated_model_is_flagged(rendered, dom):
    board, _ = rendered
    row = next(r for r in board["overall"]
               if r["model"] == ACCURATE_MISCALIBRATED and r["label_fraction"] == 1.0)
    assert row["scores"]["accuracy"]["iqm"] > 0 > row["scores"]["calibration"]["iqm"]
    table = _overall_tables(dom)[0]
    cells = _by_column(table, _row_of(table, ACCURATE_MISCALIBRATED))
    assert "worse-than-baseline" not in cells["Accuracy"].classes  # better than the baseline
    assert "worse-than-baseline" in cells["Calibration"].classes   # worse
    assert "worse than the baseline" in cells["Calibration"].text()  # in words, not only colour
    assert "accurate but miscalibrated" in cells["Notes"].text()
    for name in ("alise", "presto", "raw"):
        assert "accurate but miscalibrated" not in _by_column(
            table, _row_of(table, name))["Notes"].text()


@needs_chromium
def test_task_tables_in_browser(rendered, dom):
    board, _ = rendered
    tables = dom.find_all("table", "task")
    assert len(tables) == len(TASKS) + 2  # + the task without baseline, + lai v2
    by_caption = {_norm(t.find_all("caption")[0].text()): t for t in tables}
    identities = sorted({(g["task"], g["task_version"], g["data_hash"], g["target_kind"])
                         for g in board["groups"]})
    for task, version, data_hash, kind in identities:
        title = f"Task {task} v{version} (data {data_hash.split(':')[1][:8]})"
        table = next(t for c, t in by_caption.items() if c.startswith(title + ":"))
        main_name = MAIN_SCORE.get(task, FAMILIES[kind]["proper_score"])
        own_column = main_name not in FAMILIES[kind].values()
        assert f"main score {main_name}" in _norm(table.find_all("caption")[0].text())
        heads = [_norm(th.text()) for th in table.find_all("thead")[0].find_all("th")]
        assert _columns(table) == (["Label fraction", "Model", "Probe", "Seeds"]
                                   + ["Main score"] * own_column
                                   + ["Accuracy", "Calibration",
                                      "Proper score" + " (main score)" * (not own_column)])
        for metric in [*FAMILIES[kind].values(), main_name]:
            assert metric in " ".join(heads).split()
        groups = [g for g in board["groups"] if (g["task"], g["task_version"]) == (task, version)]
        trs = table.find_all("tbody")[0].find_all("tr")
        assert len(trs) == len(groups)
        for g in groups:
            tr = next(t for t in trs if t.attrs["data-model"] == g["model"]
                      and float(t.attrs["data-label-fraction"]) == g["label_fraction"])
            cells = _by_column(table, tr)
            assert _norm(cells["Label fraction"].text()) == format_fraction(g["label_fraction"])
            assert _norm(cells["Probe"].text()) == g["probe"]
            assert _norm(cells["Seeds"].text()) == "3"
            main = g["metrics"][main_name]
            main_text = (f"{format_value(main['mean'])} [{format_value(main['ci_low'])}, "
                         f"{format_value(main['ci_high'])}]")
            main_cell = cells["Main score" if own_column else "Proper score (main score)"]
            assert _norm(main_cell.text()).replace("\u25bc (worse than the baseline)",
                                                   "").startswith(main_text)
            for family, column in zip(("accuracy", "calibration", "proper_score"),
                                      list(cells)[-3:]):
                cell = cells[column]
                m = g["metrics"][FAMILIES[kind][family]]
                text = _norm(cell.text())
                assert text.startswith(format_value(m["mean"]))
                assert f"[{format_value(m['ci_low'])}, {format_value(m['ci_high'])}]" in text
                assert f"normalised {format_score(g['normalised'][family])}" in text
                norm = g["normalised"][family]
                assert ("worse-than-baseline" in cell.classes) == (norm is not None and norm < 0)


@needs_chromium
def test_plots_and_provenance_in_browser(rendered, dom):
    board, index = rendered
    imgs = dom.find_all("img")
    srcs = [i.attrs["src"] for i in imgs]
    # 6 task sections + 2 scatter plots (one per label fraction) + the label-fraction curves
    assert len(imgs) == len(TASKS) + 2 + 2 + 1
    assert "plots/label-fraction-curves.png" in srcs
    assert {"plots/accuracy-vs-calibration-lf1.png",
            "plots/accuracy-vs-calibration-lf0p1.png"} <= set(srcs)
    import matplotlib.image as mpimg

    for img in imgs:
        assert img.attrs.get("alt"), "every plot has a text alternative"
        path = index.parent / img.attrs["src"]
        assert not Path(img.attrs["src"]).is_absolute() and path.is_file()
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        pixels = mpimg.imread(path)
        assert pixels.ndim == 3 and pixels.shape[0] > 100 and pixels.shape[1] > 100
        assert pixels.std() > 0
    notes = next(s for s in dom.find_all("section") if s.attrs.get("aria-labelledby") == "notes")
    assert _norm(notes.text()) == "Notes " + board["notes"][0]
    prov = next(s for s in dom.find_all("section")
                if s.attrs.get("aria-labelledby") == "provenance")
    text = _norm(prov.text())
    assert board["generated"] in text and board["source"] in text
    assert "releo-v1 version 1" in text and "(m - b) / (ideal - b)" in text
    assert "stratified bootstrap over seeds" in text and "n boot: 500" in text
    assert (f"releo-bench leaderboard --format html --tracking-uri '{board['source']}' "
            f"--suite releo-v1 --out {index.parent}") in text
    # nothing from the network: no script, no external stylesheet or image
    assert not dom.find_all("script") and not dom.find_all("link")
    assert all(not re.match(r"^[a-z]+:", s) for s in srcs)


@needs_chromium
def test_screenshot_is_a_rendered_page(rendered, tmp_path):
    _, index = rendered
    shot = tmp_path / "page.png"
    _chromium([f"--screenshot={shot}", "--window-size=1200,2400", index.resolve().as_uri()],
              tmp_path / "profile")
    import matplotlib.image as mpimg

    pixels = mpimg.imread(shot)
    assert pixels.shape[:2] == (2400, 1200)
    rgb = pixels[..., :3]
    assert rgb.var() > 0.001, "blank screenshot"
    # the plots are loaded (not blocked by the page's content security policy): the first
    # model's colour (#0072b2) only comes from the scatter plot, never from the page's CSS
    colour = np.array([0x00, 0x72, 0xb2]) / 255.0
    assert (np.abs(rgb - colour).max(axis=-1) < 0.02).sum() > 20
    # the calibration flag's shading (#fde8e0) is drawn in the overall table
    shade = np.array([0xfd, 0xe8, 0xe0]) / 255.0
    assert (np.abs(rgb - shade).max(axis=-1) < 0.02).sum() > 100


# -- escaping -----------------------------------------------------------------------------------

INJECTED = "<script>alert(1)</script>"


def _hostile_board() -> dict:
    models = dict(MODELS)
    models[INJECTED] = ('1.0"><img src=x onerror=alert(2)>', 0.5, 0.2)
    models["$price$ & _co"] = ("1", 0.3, 0.1)  # mathtext and legend-hiding in matplotlib
    board = make_board(models)
    for g in board["groups"]:
        if g["task"] == "lai":
            g["task"] = "lai<b>bold</b>"
    board["source"] = "files'\"><script>alert(3)</script>"
    return board


@pytest.fixture(scope="module")
def hostile(tmp_path_factory) -> Path:
    return write_html(_hostile_board(), tmp_path_factory.mktemp("hostile"))


def test_board_strings_are_escaped_in_the_html(hostile):
    text = hostile.read_text()
    assert "<script" not in text.lower()
    assert "<img src=x" not in text and "<b>bold</b>" not in text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text
    root = parse(text)
    assert not root.find_all("script") and not root.find_all("b")
    assert all(i.attrs["src"].startswith("plots/") for i in root.find_all("img"))
    for f in (hostile.parent / "plots").iterdir():
        assert re.fullmatch(r"[a-z0-9.-]+\.png", f.name), f.name


@needs_chromium
def test_no_injection_in_browser_dom(hostile, tmp_path):
    text = _chromium(["--dump-dom", hostile.resolve().as_uri()], tmp_path / "profile")
    assert "<table" in text
    assert "<script>alert" not in text and "<script" not in text.lower()
    assert "onerror" not in [a for n in parse(text).find_all("img") for a in n.attrs]
    root = parse(text)
    assert not root.find_all("script") and not root.find_all("b")
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text
    table = _overall_tables(root)[0]
    assert INJECTED in _cells(_row_of(table, INJECTED))[1].text()  # shown as text
    assert "$price$ & _co" in table.text()


# -- without a browser ----------------------------------------------------------------------------

def test_plot_files_are_deterministic_and_stale_ones_removed(rendered, tmp_path):
    shutil.copytree(rendered[1].parent, tmp_path, dirs_exist_ok=True)
    first = sorted(p.name for p in (tmp_path / "plots").iterdir())
    assert "label-fraction-curves.png" in first and len(first) == len(TASKS) + 2 + 2 + 1
    (tmp_path / "plots" / "notes.txt").write_text("kept")
    # one label fraction, no task without baseline: fewer plots, the others are removed
    single = make_board(fractions=(1.0,), no_baseline_task=False, suite={})
    index = write_html(single, tmp_path,
                       command="releo-bench leaderboard --format html --out 'a b'")
    names = sorted(p.name for p in (tmp_path / "plots").iterdir())
    assert "label-fraction-curves.png" not in names and "notes.txt" in names
    assert len(names) == len(TASKS) + 1 + 1
    assert set(names) - {"notes.txt"} <= set(first)  # same names for the same content
    text = index.read_text()
    assert 'src="plots/label-fraction-curves.png"' not in text
    assert "Left out of the overall scores" not in text
    assert "none (all runs found)" in text
    assert "releo-bench leaderboard --format html --out &#x27;a b&#x27;</code>" in text
    single["source"] = "files"  # no suite, runs from files: nothing more to say
    assert default_command(single) == "releo-bench leaderboard --format html"
    assert default_command(single, "lb dir") == "releo-bench leaderboard --format html --out 'lb dir'"


def test_rejects_other_formats(tmp_path):
    with pytest.raises(LeaderboardPageError, match="format"):
        write_html({"format": "releo-leaderboard/2", "groups": [], "overall": []}, tmp_path)
    with pytest.raises(LeaderboardPageError, match="groups"):
        write_html({"format": "releo-leaderboard/1", "overall": []}, tmp_path)
    board = make_board(fractions=(1.0,), no_baseline_task=False)
    board["groups"][0]["label_fraction"] = None
    with pytest.raises(LeaderboardPageError, match=r"groups\[0\]: label_fraction"):
        write_html(board, tmp_path)


def test_empty_board_renders(tmp_path):
    index = write_html({"format": "releo-leaderboard/1", "generated": "2025-01-01T00:00:00Z",
                        "source": "files", "suite": None, "groups": [], "overall": []}, tmp_path)
    root = parse(index.read_text())
    assert not root.find_all("table") and not root.find_all("img")
    assert "Provenance" in root.text() and "none (all runs found)" in root.text()


def test_number_formats():
    assert format_value(0.12345) == "0.123" and format_value(12.3456) == "12.346"
    assert format_value(-0.0001) == "-1.00e-04" and format_value(None) == "\u2014"
    assert format_value(float("nan")) == "\u2014" and format_value(-0.0) == "0.000"
    assert format_score(-0.001) == "0.00" and format_score(0.456) == "0.46"
    assert format_fraction(0.1) == "10 %" and format_fraction(1.0) == "100 %"
