"""Figs. 2, 4, 6, 9-11 (qualitative comparisons of SR outputs) and the comparison widget's banner, snapshot and
output-folder-relative image paths."""
from __future__ import annotations

import io
import json
import shutil
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402

from asymlib.analysis import Panel, crop_box_array, plot_zoom_grid, zoom_box  # noqa: E402
from asymlib.config import get_profile  # noqa: E402
from asymlib.errors import ConfigError, InputSizeError, UnknownNameError  # noqa: E402
from asymlib.experiments.figures import (QUALITATIVE_FIGURES, comparison_inputs, fig2_objectives,  # noqa: E402
                                         fig6_discriminators, load_study_tables, plot_qualitative,
                                         qualitative_grids)
from asymlib.imageio import load_image, save_image  # noqa: E402
from asymlib.reporting import save_figure  # noqa: E402
from asymlib.widgets import HR_LABEL, ComparisonWidget, png_bytes  # noqa: E402

SMOKE = get_profile("smoke")
REPO_ROOT = Path(__file__).resolve().parents[1]
SMOKE_STUDY = REPO_ROOT / "build" / "test_study"
SETTINGS = ("perceptual", "rec+perceptual", "perceptual+adv", "rec+perceptual+adv")
METRICS = {"vgg16": "VGG-16", "swin_t": "Swin-T"}
NAMES = ("a", "b")
H, W = 32, 48
COLLAPSED = ("perceptual+adv", "vgg16")  # the notebook-02 run that collapsed (no output)
EXPECTED_STEMS = ["fig2_qualitative_objectives", "fig4_qualitative_objectives_metrics",
                  "fig6_qualitative_discriminators", "fig9_qualitative_objectives_metrics",
                  "fig10_qualitative_objectives_metrics", "fig11_qualitative_objectives_metrics"]


# ----------------------------------------------------------------------------------------------
# A small output folder as notebooks 02 and 04 write it
# ----------------------------------------------------------------------------------------------
def _write_json(path: Path, obj: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj))


def _sr_eval(root: Path, key: str, source: str | None, gen: torch.Generator) -> str:
    """An ``sr_eval`` run folder with one random PNG per validation image; returns its images folder (relative)."""
    run = root / "runs" / "sr_eval" / key
    for name in NAMES:
        save_image(torch.rand(3, H, W, generator=gen), run / "images" / f"{name}.png")
    _write_json(run / "config.json", {"name": key.rsplit("-", 1)[0], "task": "sr_eval",
                                      "deps": [source] if source else []})
    _write_json(run / "status.json", {"status": "finished", "images": len(NAMES)})
    return f"runs/sr_eval/{key}/images"


def _score_rows(images_dir: str, base: float, **extra) -> list[dict]:
    rows = []
    for i, name in enumerate(NAMES):
        for ev, kind, score in (("PIQE", "nr", base + i), ("LIQE", "nr", base + i + 2.0), ("PSNR", "fr", 20.0 + i)):
            rows.append({"evaluator": ev, "kind": kind, "image": name, "raw": score, "score": score,
                         "images_dir": images_dir, **extra})
    return rows


def _write_study(root: Path, seed: int = 0) -> None:
    """tables/ and runs/ of notebooks 01-04 in miniature: every notebook-02 cell has outputs except the collapsed
    ``perceptual+adv`` VGG-16 run; notebook 04 has a base, vanilla and patch runs (patch ResNet-50 collapsed)."""
    gen = torch.Generator().manual_seed(seed)
    tables = root / "tables"
    tables.mkdir(parents=True)
    sr_rows = []
    sr_rows += _score_rows(_sr_eval(root, "HR-000", None, gen), 60.0, setting=None, metric=None, column="Ref.")
    sr_rows += _score_rows(_sr_eval(root, "stage1-l1-001", "stage1-l1-aaa", gen), 30.0, setting=None, metric=None,
                           column="L1")
    for k, setting in enumerate(SETTINGS):
        for j, (metric, display) in enumerate(METRICS.items()):
            if (setting, metric) == COLLAPSED:
                continue
            key = f"{setting.replace('+', '_')}-{metric}-0{k}{j}"
            sr_rows += _score_rows(_sr_eval(root, key, f"train-{key}", gen), 40.0 + 4 * k + j, setting=setting,
                                   metric=metric, column=display)
    _write_json(root / "runs" / "sr" / "perceptual_adv-vgg16-ccc" / "config.json",
                {"name": "perceptual+adv-vgg16", "task": "sr_train", "deps": []})
    _write_json(root / "runs" / "sr" / "perceptual_adv-vgg16-ccc" / "status.json",
                {"status": "collapsed", "step": 3, "reason": "non-finite loss"})
    pd.DataFrame(sr_rows).assign(profile="smoke").to_csv(tables / "sr_nriqa_scores.csv", index=False)
    t1 = [{"setting": s, "evaluator": "Average", "column": c, "score": 40.0}
          for s in SETTINGS for c in (*METRICS.values(), "Std.", "L1", "Ref.")]
    pd.DataFrame(t1).to_csv(tables / "table1_sr_nriqa_by_objective.csv", index=False)

    runs = [("none", None, "w/o (base)", "base", "finished", 4, "base-key"),
            ("vanilla", "vgg16", "VGG-16", "ablation", "finished", 4, "van-vgg-key"),
            ("vanilla", "resnet50", "ResNet-50", "ablation", "finished", 4, "van-res-key"),
            ("patch", "vgg16", "VGG-16", "ablation+sweep", "finished", 4, "pat-vgg-key"),
            ("patch", "resnet50", "ResNet-50", "ablation+sweep", "collapsed", 2, "pat-res-key"),
            ("patch", "vgg16", "VGG-16", "sweep", "finished", 4, "sweep-key")]
    run_rows, disc_scores = [], []
    for n, (head, bb, display, roles, status, step, run_id) in enumerate(runs):
        run_rows.append({"head": head, "backbone": bb, "display": display, "lambda_adv": 5e-3, "seed": 0,
                         "roles": roles, "status": status, "step": step, "reason": "", "run_id": run_id,
                         "run_dir": f"runs/sr/{run_id}", "export": ""})
        if status == "finished":
            d = _sr_eval(root, f"{run_id}-e{n}", run_id, gen)
            disc_scores += [{"run_id": run_id, **r} for r in _score_rows(d, 50.0 + n)]
    pd.DataFrame(run_rows).to_csv(tables / "discriminator_runs.csv", index=False)
    pd.DataFrame(disc_scores).assign(profile="smoke").to_csv(tables / "discriminator_image_scores.csv", index=False)

    metrics = pd.DataFrame([{"display": d, "backbone": m, "benchmark": b, "srcc": 0.5, "plcc": 0.5,
                             "profile": "smoke"} for m, d in METRICS.items() for b in ("Synthetic levels", "Average")])
    metrics.to_csv(tables / "metric_study_results.csv", index=False)
    pd.DataFrame([{"paper_backbone": "VGG-16", "init_display": "Random", "initialization": "random",
                   "backbone": "vgg16", "benchmark": "Average", "srcc": 0.5, "plcc": 0.5, "status": "ok",
                   "profile": "smoke"}]).to_csv(tables / "fr_iqa_by_initialization_results.csv", index=False)
    pd.DataFrame([{"head": "none", "backbone": "w/o (base)", "variant": "w/o (base)", "evaluator": "Average",
                   "score": 50.0, "status": "finished"}]).to_csv(tables / "table3_sr_nriqa_by_discriminator.csv",
                                                                 index=False)
    pd.DataFrame(columns=["backbone", "head", "lambda3", "seed", "path", "status", "step", "profile",
                          "run_id"]).to_csv(tables / "gan_backbones.csv", index=False)


def _png(root: Path, setting: str, metric: str, image: str) -> torch.Tensor:
    sc = pd.read_csv(root / "tables" / "sr_nriqa_scores.csv")
    d = sc[(sc["setting"] == setting) & (sc["metric"] == metric)]["images_dir"].iloc[0]
    return load_image(root / d / f"{image}.png")


@pytest.fixture
def study(tmp_path: Path) -> Path:
    root = tmp_path / "study"
    _write_study(root)
    return root


def _axes(fig) -> dict[str, list]:
    out: dict[str, list] = {}
    for ax in fig.get_axes():
        out.setdefault(ax.get_label(), []).append(ax)
    return out


# ----------------------------------------------------------------------------------------------
# The drawing (asymlib.analysis.qualitative)
# ----------------------------------------------------------------------------------------------
def test_zoom_box_picks_the_window_of_highest_gradient_energy():
    gen = torch.Generator().manual_seed(1)
    img = torch.full((3, 64, 80), 0.5)
    img[:, 40:56, 8:24] = torch.rand(3, 16, 16, generator=gen)  # the only texture
    x, y, s = zoom_box(img)
    assert s == 16  # a quarter of the shorter side
    assert x <= 8 and x + s >= 24 - 2 and y <= 40 and y + s >= 56 - 2  # covers the textured square
    assert zoom_box(img) == (x, y, s)  # deterministic
    x2, y2, s2 = zoom_box(img, size=24, stride=1)
    assert s2 == 24 and x2 <= 8 and x2 + 24 >= 24 and y2 <= 40 and y2 + 24 >= 56
    # a flat image: every window ties and the first one (top-left) is chosen
    assert zoom_box(torch.zeros(3, 32, 32)) == (0, 0, 8)
    assert zoom_box(img, size=500)[2] == 64  # clamped to the image
    with pytest.raises(ConfigError):
        zoom_box(img, fraction=0.0)


def test_zoom_grid_draws_boxes_magnified_crops_and_labelled_empty_panels():
    gen = torch.Generator().manual_seed(2)
    hr = torch.rand(3, 40, 60, generator=gen)
    sr = torch.rand(3, 40, 60, generator=gen)
    box = (10, 5, 12)
    rows = [[Panel("HR", hr, caption="PIQE 61"), Panel("SR", sr), None],
            [Panel("GAN", None, note="no output: collapsed at step 3"), Panel("Rec.", sr, caption="PIQE 40")]]
    fig = plot_zoom_grid(rows, box, row_labels=["refs", "runs"], title="Fig. X", banner="SMOKE PROFILE: test",
                         title_color="#b00020")
    axes = _axes(fig)
    assert sorted(k for k in axes if k.startswith("panel:")) == ["panel:GAN", "panel:HR", "panel:Rec.", "panel:SR"]
    assert sorted(k for k in axes if k.startswith("zoom:")) == ["zoom:GAN", "zoom:HR", "zoom:Rec.", "zoom:SR"]
    assert len(axes["blank"]) == 4  # the third cells of both rows (None, and a short row): image and zoom slots
    for label in ("HR", "SR", "Rec."):
        ax = axes[f"panel:{label}"][0]
        assert ax.get_title() == label
        (rect,) = ax.patches
        assert rect.get_xy() == (box[0] - 0.5, box[1] - 0.5) and rect.get_width() == rect.get_height() == box[2]
    # the zoom shows exactly the boxed region, magnified with repeated pixels
    zoomed = axes["zoom:SR"][0].get_images()[0].get_array()
    crop = sr.permute(1, 2, 0).numpy()[5:17, 10:22]
    factor = zoomed.shape[0] // 12
    assert factor >= 2 and zoomed.shape[:2] == (12 * factor, 12 * factor)
    np.testing.assert_allclose(np.asarray(zoomed)[::factor, ::factor], crop, atol=1e-6)
    np.testing.assert_allclose(crop_box_array(sr.permute(1, 2, 0).numpy(), box, magnify_to=12), crop, atol=1e-6)
    # the missing run: no image, its note written in the panel
    gan = axes["panel:GAN"][0]
    assert not gan.get_images() and not gan.patches
    assert any("collapsed at step 3" in t.get_text().replace("\n", " ") for t in gan.texts)
    assert axes["zoom:HR"][0].get_xlabel() == "PIQE 61"  # captions under the magnified region
    assert axes["panel:HR"][0].get_ylabel() == "refs" and axes["panel:GAN"][0].get_ylabel() == "runs"
    title = fig._suptitle
    assert "Fig. X" in title.get_text() and "SMOKE PROFILE" in title.get_text()
    assert matplotlib.colors.to_hex(title.get_color()) == "#b00020"
    plt.close(fig)

    # inset style: the zoom sits inside the panel, in the corner away from the box (box top-left -> bottom-right)
    fig = plot_zoom_grid([[Panel("HR", hr), Panel("SR", sr)]], box, zoom="inset")
    axes = _axes(fig)
    (inset,) = axes["panel:SR"][0].child_axes
    assert inset.get_label() == "zoom:SR"
    fig.canvas.draw()
    outer, inner = axes["panel:SR"][0].get_position(), inset.get_position()
    assert inner.x1 == pytest.approx(outer.x1, abs=1e-3) and inner.y0 == pytest.approx(outer.y0, abs=1e-3)
    assert inner.height == pytest.approx(0.5 * outer.height, rel=1e-2)  # half the shorter side (40 of 40x60)
    assert inner.width * fig.get_figwidth() == pytest.approx(inner.height * fig.get_figheight(), rel=1e-2)
    plt.close(fig)
    auto = plot_zoom_grid([[Panel("HR", hr)]], reference=hr)
    assert _axes(auto)["panel:HR"][0].patches[0].get_width() == zoom_box(hr)[2]
    plt.close(auto)
    with pytest.raises(InputSizeError):
        plot_zoom_grid([[Panel("HR", hr), Panel("small", torch.rand(3, 20, 30))]])
    with pytest.raises(ConfigError, match="not inside"):
        plot_zoom_grid([[Panel("HR", hr)]], (55, 0, 12))
    with pytest.raises(ConfigError, match="give the zoom box"):
        plot_zoom_grid([[Panel("x", None, note="missing")]])


# ----------------------------------------------------------------------------------------------
# The figures from the study's outputs (asymlib.experiments.figures)
# ----------------------------------------------------------------------------------------------
def test_qualitative_figures_from_the_study_outputs(study: Path, tmp_path: Path):
    tables = load_study_tables(study, SMOKE)
    grids = qualitative_grids(tables)
    assert sorted(grids) == [2, 4, 6, 9, 10, 11]
    assert [grids[n].stem for n in sorted(grids)] == [QUALITATIVE_FIGURES[n] for n in sorted(grids)]
    assert sorted(QUALITATIVE_FIGURES.values()) == sorted(EXPECTED_STEMS)

    fig2 = grids[2]
    assert fig2.image == "a"
    assert [p.label for p in fig2.panels] == ["HR", "Bicubic (LR x4)", "Rec. (L1, stage 1)", "VGG-16", "Rec. + VGG-16",
                                              "VGG-16 + Adv.", "Rec. + VGG-16 + Adv."]
    by_label = {p.label: p for p in fig2.panels}
    # each panel is its own run's PNG (not another run's)
    torch.testing.assert_close(by_label["Rec. + VGG-16"].image, _png(study, "rec+perceptual", "vgg16", "a"))
    torch.testing.assert_close(by_label["HR"].image, fig2.reference)
    assert by_label["Bicubic (LR x4)"].image.shape == fig2.reference.shape
    # captions: the mean of the two NR evaluators (PIQE 48, LIQE 50 for image a of rec+perceptual+adv / VGG-16)
    assert by_label["Rec. + VGG-16 + Adv."].caption == "NR avg 53"
    assert by_label["HR"].caption == "NR avg 61"
    # the collapsed run: an empty panel that says so
    gan = by_label["VGG-16 + Adv."]
    assert gan.image is None and gan.note == "no output: collapsed at step 3"
    assert fig2_objectives(tables, "b", evaluators=["PSNR", "PIQE"]).panels[0].caption == "PSNR 21, PIQE 61"
    with pytest.raises(UnknownNameError):
        fig2_objectives(tables, metric="CLIP-ViT")
    with pytest.raises(UnknownNameError):
        fig2_objectives(tables, image="zebra")

    fig4 = grids[4]
    assert fig4.row_labels == ["references", "Per.", "Rec. + Per.", "Per. + Adv.", "Rec. + Per. + Adv."]
    assert [len(r) for r in fig4.rows] == [3, 2, 2, 2, 2]
    assert [p.label for p in fig4.rows[1]] == ["VGG-16", "Swin-T"]
    torch.testing.assert_close(fig4.rows[4][1].image, _png(study, "rec+perceptual+adv", "swin_t", "a"))
    assert fig4.rows[3][0].image is None and "collapsed" in fig4.rows[3][0].note

    # Figs. 9-11: the Fig. 4 layout on the next images, taken again (and said so) when there are only two
    assert [(grids[n].image, grids[n].reused) for n in (9, 10, 11)] == [("b", False), ("a", True), ("b", True)]
    assert "shown again" in grids[10].title and "shown again" not in grids[9].title
    assert grids[9].title.startswith("Fig. 9:") and grids[11].title.startswith("Fig. 11:")

    fig6 = grids[6]
    assert fig6.row_labels == ["references", "Vanilla D", "Patch-level D"]
    assert [[p.label for p in r] for r in fig6.rows] == [["HR", "Bicubic (LR x4)", "w/o D (base)"],
                                                        ["VGG-16", "ResNet-50"], ["VGG-16", "ResNet-50"]]
    patch_res = fig6.rows[2][1]
    assert patch_res.image is None and patch_res.note == "no output: collapsed at step 2"
    assert fig6.rows[1][0].image is not None and fig6.rows[1][0].caption == "NR avg 52"  # vanilla VGG-16 (n=1)

    # the files, with the panels and the zoom box drawn
    for n, grid in grids.items():
        fig = plot_qualitative(grid, tables)
        axes = _axes(fig)
        assert len([k for k in axes if k.startswith("panel:")]) == len({p.label for p in grid.panels})
        assert "SMOKE PROFILE" in fig._suptitle.get_text()
        assert matplotlib.colors.to_hex(fig._suptitle.get_color()) == "#b00020"
        box = zoom_box(grid.reference)
        hr_rect = axes["panel:HR"][0].patches[0]
        assert (hr_rect.get_xy(), hr_rect.get_width()) == ((box[0] - 0.5, box[1] - 0.5), box[2])
        paths = save_figure(fig, tmp_path / "figures", grid.stem)
        plt.close(fig)
        assert [p.name for p in paths] == [f"{grid.stem}.png", f"{grid.stem}.pdf"]
    assert sorted(p.stem for p in (tmp_path / "figures").glob("*.png")) == sorted(EXPECTED_STEMS)
    for path in (tmp_path / "figures").glob("*.png"):
        assert Image.open(path).size[0] > 300
    fig = plot_qualitative(grids[2], tables, box=(4, 6, 10))
    assert _axes(fig)["panel:VGG-16"][0].patches[0].get_xy() == (3.5, 5.5)
    assert any("collapsed at step 3" in t.get_text().replace("\n", " ") for t in _axes(fig)["panel:VGG-16 + Adv."][0].texts)
    plt.close(fig)


def test_fig6_finds_the_outputs_of_an_older_notebook_04_without_its_image_table(study: Path):
    (study / "tables" / "discriminator_image_scores.csv").unlink()
    tables = load_study_tables(study, SMOKE)
    grid = fig6_discriminators(tables)
    van = grid.rows[1][0]
    expected = load_image(next((study / "runs" / "sr_eval").glob("van-vgg-key-*")) / "images" / "a.png")
    torch.testing.assert_close(van.image, expected)
    assert van.caption == ""  # no per-image scores without the table
    assert grid.rows[2][1].note == "no output: collapsed at step 2"
    (study / "tables" / "discriminator_runs.csv").unlink()
    with pytest.raises(FileNotFoundError, match="04_discriminator_ablation"):
        fig6_discriminators(tables)


def test_a_run_never_trained_or_not_evaluated_says_so(study: Path):
    shutil.rmtree(study / "runs" / "sr")  # no record of the collapsed run
    tables = load_study_tables(study, SMOKE)
    gan = {p.label: p for p in fig2_objectives(tables).panels}["VGG-16 + Adv."]
    assert gan.image is None and gan.note == "no output: not trained"
    _write_json(study / "runs" / "sr" / "perceptual_adv-vgg16-ddd" / "config.json",
                {"name": "perceptual+adv-vgg16", "task": "sr_train", "deps": []})
    _write_json(study / "runs" / "sr" / "perceptual_adv-vgg16-ddd" / "status.json", {"status": "finished"})
    gan = {p.label: p for p in fig2_objectives(tables).panels}["VGG-16 + Adv."]
    assert gan.note == "no output: finished but not evaluated (re-run notebook 02)"


def test_notebook_04_writes_per_image_scores_with_the_image_folders(tmp_path: Path, monkeypatch):
    from asymlib.experiments import discriminator_ablation as da
    from asymlib.pipeline import StudyContext

    class Pool:
        @classmethod
        def of(cls, ctx):
            return cls()

        def rescalings(self, train_missing):
            return {}

        def availability(self):
            return pd.DataFrame()

    def score_runs(ctx, sources, pool, rescalings, train_missing=True):
        return pd.DataFrame([{"label": label, "evaluator": "PIQE", "kind": "nr", "image": "0801", "raw": 1.0,
                              "score": 50.0, "images_dir": f"runs/sr_eval/{key}-e/images"}
                             for label, key in sources.items()])

    monkeypatch.setattr(StudyContext, "status", lambda self, spec: {"status": "finished", "step": 1})
    monkeypatch.setattr(da, "EvaluatorPool", Pool)
    monkeypatch.setattr(da, "score_runs", score_runs)
    monkeypatch.setattr(da, "export_discriminator_backbone", lambda *a, **k: None)
    prof = get_profile("smoke", **{"discriminators.backbones": ["vgg16"], "discriminators.heads": ["patch"],
                                   "discriminators.sweep_lambda_adv": [5e-3]})
    res = da.run_discriminator_study(prof, tmp_path, progress=False, train_missing=False)
    written = pd.read_csv(tmp_path / "tables" / "discriminator_image_scores.csv", dtype={"image": str})
    assert list(written.columns) == ["run_id", "evaluator", "kind", "image", "raw", "score", "images_dir", "profile"]
    assert sorted(written["run_id"]) == sorted(res.runs["run_id"])
    assert set(written["images_dir"]) == {f"runs/sr_eval/{k}-e/images" for k in res.runs["run_id"]}
    assert set(written["image"]) == {"0801"} and set(written["profile"]) == {"smoke"}
    assert "images_dir" in res.scores.columns


def test_qualitative_figures_from_the_smoke_study():
    if not SMOKE_STUDY.is_dir():
        pytest.skip(f"{SMOKE_STUDY} is absent: it is written by scripts/study.sh (the smoke study)")
    tables = load_study_tables(SMOKE_STUDY, SMOKE)
    grids = qualitative_grids(tables)
    assert sorted(grids) == [2, 4, 6, 9, 10, 11]
    n_metrics = len([c for c in tables.table1["column"].unique() if c not in ("Std.", "L1", "Ref.")])
    n_settings = tables.table1["setting"].nunique()
    assert len(grids[2].panels) == 3 + n_settings
    assert [len(r) for r in grids[4].rows] == [3] + [n_metrics] * n_settings
    runs = pd.read_csv(SMOKE_STUDY / "tables" / "discriminator_runs.csv")
    ablation = runs[runs["roles"].str.contains("ablation")]
    assert len(grids[6].panels) == 3 + len(ablation)
    for grid in grids.values():
        shape = grid.reference.shape
        for p in grid.panels:
            assert (p.image is not None and tuple(p.image.shape) == tuple(shape)) or p.note.startswith("no output")
    finished = runs[runs["roles"].str.contains("ablation|base") & runs["status"].eq("finished")]
    assert sum(p.image is not None for p in grids[6].panels) == 2 + len(finished)
    fig = plot_qualitative(grids[6], tables)
    assert len([k for k in _axes(fig) if k.startswith("panel:")]) == len({p.label for p in grids[6].panels})
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    assert buf.getvalue()[:8] == b"\x89PNG\r\n\x1a\n"


# ----------------------------------------------------------------------------------------------
# The comparison widget: banner, snapshot, a moved output folder
# ----------------------------------------------------------------------------------------------
def _widget_images() -> tuple[dict, dict]:
    gen = torch.Generator().manual_seed(3)
    hr = torch.rand(3, 48, 64, generator=gen)
    runs = {"run0": (hr + 0.1 * torch.randn(hr.shape, generator=gen)).clamp(0, 1), "run1": torch.rand(3, 48, 64)}
    images = {"a": {"lr": torch.nn.functional.avg_pool2d(hr[None], 4)[0], "hr": hr, "runs": runs}}
    return images, {("a", "run0"): {"PIQE": 41.25}, ("a", "HR"): {"PIQE": 60.0}}


def test_widget_banner_and_snapshot(tmp_path: Path):
    images, scores = _widget_images()
    banner = "SMOKE PROFILE: random backbone weights. Numbers check the pipeline; they are NOT comparable."
    w = ComparisonWidget(images, scores, crop_size=16, panel_px=128, banner=banner, banner_alert=True)
    assert w.widget.children[0] is w.banner_html
    assert banner in w.banner_html.value and "#b00020" in w.banner_html.value
    plain = ComparisonWidget(images, scores, crop_size=16, panel_px=128, crop_psnr=False)
    assert plain.banner_html is None
    assert not any("SMOKE" in getattr(c, "value", "") for c in plain.widget.children)

    w2 = ComparisonWidget(images, scores, crop_size=16, panel_px=128, crop_psnr=False)
    w2.set_crop(20, 8)
    snap = Image.open(io.BytesIO(w2.snapshot()))
    assert snap.format == "PNG" and snap.mode == "RGB"
    n_tiles = 1 + len(w2.panel_labels)  # the overview and LR, HR, run0, run1
    assert n_tiles == 5 and snap.size[0] == n_tiles * (128 + 8) + 8
    assert snap.size[1] >= 8 + 14 + 128 + 4 + 14 + 8
    # without a banner the panels start under one line of titles; the HR tile is the HR crop, magnified
    pixels = np.asarray(snap)
    left = 8 + 2 * (128 + 8)
    hr_tile = np.asarray(Image.open(io.BytesIO(png_bytes(w2.current_crops()[HR_LABEL], 128))))
    np.testing.assert_array_equal(pixels[22:22 + 128, left:left + 128], hr_tile)
    # the banner adds its lines on top, in red for the smoke profile
    red = np.asarray(Image.open(io.BytesIO(w.snapshot())))
    assert red.shape[0] >= snap.size[1] + 14 + 8  # at least one banner line and its gap
    top = red[:8 + 14].reshape(-1, 3).astype(int)
    assert ((top[:, 0] > 120) & (top[:, 1] < 60) & (top[:, 2] < 80)).any()
    assert not ((pixels[:22].reshape(-1, 3)[:, 0] > 120) & (pixels[:22].reshape(-1, 3)[:, 1] < 60)).any()
    # moving the crop changes the picture; a path gets the same bytes
    before = w2.snapshot()
    w2.set_crop(0, 0)
    after = w2.snapshot(tmp_path / "figures" / "snap.png")
    assert after != before and (tmp_path / "figures" / "snap.png").read_bytes() == after


def test_widget_reads_images_relative_to_a_moved_output_folder(study: Path, tmp_path: Path):
    sc = pd.read_csv(study / "tables" / "sr_nriqa_scores.csv")
    assert not any(Path(d).is_absolute() for d in sc["images_dir"])
    moved = tmp_path / "elsewhere" / "output"
    moved.parent.mkdir()
    shutil.move(str(study), str(moved))
    assert not study.exists()
    tables = load_study_tables(moved, SMOKE)
    images, scores, default = comparison_inputs(tables)
    assert sorted(images) == list(NAMES)
    for entry in images.values():
        assert entry["runs"] and all(Path(p).is_file() and moved in Path(p).parents for p in entry["runs"].values())
    assert "perceptual+adv / VGG-16" not in images["a"]["runs"]  # collapsed: no output
    assert default == ["L1", "perceptual / VGG-16", "rec+perceptual / VGG-16", "rec+perceptual+adv / VGG-16"]
    w = ComparisonWidget(images, scores, runs=default, banner=tables.banner, banner_alert=True)
    crops = w.current_crops()
    x, y, s = w.crop_box
    expected = load_image(moved / "runs" / "sr_eval" / "perceptual-vgg16-000" / "images" / "a.png")
    np.testing.assert_allclose(crops["perceptual / VGG-16"], expected.permute(1, 2, 0).numpy()[y:y + s, x:x + s],
                               atol=1e-6)
    assert "SMOKE PROFILE" in w.banner_html.value
    assert Image.open(io.BytesIO(w.snapshot())).size[0] == (1 + len(w.panel_labels)) * (192 + 8) + 8
    # the figures too
    assert all(p.image is not None for p in fig6_discriminators(tables).rows[1])
