"""The paper-vs-ours builder of the reporting layer: alignment, separate ranks, comparability, labels."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from asymlib.errors import ConfigError, UnknownNameError
from asymlib.rehearsal import REHEARSAL_MARKER
from asymlib.reporting import (average_label, averaged_evaluators, compare_with_paper, numbers_comparable,
                               paper_averaged_evaluators, paper_comparison, styled_table)

PAPER = pd.DataFrame({"row": ["r"] * 3, "item": ["b", "a", "Std."], "value": [2.0, 3.0, 9.0]})
OURS = pd.DataFrame({"row": ["r"] * 4, "item": ["a", "b", "Std.", "extra"], "value": [1.0, 5.0, 0.5, 4.0],
                     "status": ["ok", "ok", "ok", "collapsed?"]})


def _compare(comparable: bool, **kw):
    return compare_with_paper(9, "t", PAPER, OURS, ["row", "item"], "item", ["row"], ["item"], "smoke", "random",
                              unranked=("Std.",), comparable=comparable, **kw)


def _marks(styler) -> tuple[list, list]:
    ctx = styler._compute().ctx
    cols = list(styler.data.columns)
    bold = sorted(cols[c] for (_, c), v in ctx.items() if ("font-weight", "bold") in v)
    under = sorted(cols[c] for (_, c), v in ctx.items() if ("text-decoration", "underline") in v)
    return bold, under


def test_comparable_numbers_get_a_delta_and_interleaved_columns():
    comp = _compare(True)
    long = comp.long.set_index("item")
    assert list(comp.long.columns) == ["row", "item", "paper", "ours", "delta", "paper_rank", "ours_rank"]
    assert list(comp.long["item"]) == ["b", "a", "Std.", "extra"]  # paper order, then our extra rows
    assert long.loc["a", "delta"] == pytest.approx(-2.0) and long.loc["b", "delta"] == pytest.approx(3.0)
    assert np.isnan(long.loc["extra", "paper"]) and np.isnan(long.loc["extra", "delta"])
    # ranks per source: the paper's among the paper's values, ours among ours
    assert long.loc["a", "paper_rank"] == 1 and long.loc["b", "paper_rank"] == 2
    assert np.isnan(long.loc["extra", "paper_rank"])
    assert long.loc["b", "ours_rank"] == 1 and long.loc["extra", "ours_rank"] == 2 and long.loc["a", "ours_rank"] == 3
    assert np.isnan(long.loc["Std.", "ours_rank"]) and np.isnan(long.loc["Std.", "paper_rank"])  # never ranked
    wide = comp.wide()
    assert wide.columns.names == ["item", "source"]
    assert list(wide.columns[:3]) == [("b", "paper"), ("b", "ours (smoke)"), ("b", "delta")]
    assert wide.loc["r", ("a", "delta")] == pytest.approx(-2.0)
    bold, under = _marks(comp.styled())
    assert bold == [("a", "paper"), ("b", "ours (smoke)")]
    assert under == [("b", "paper"), ("extra", "ours (smoke)")]
    html = comp.styled().to_html()
    assert "SMOKE PROFILE" in html and "delta = ours - paper" in html and "nan" not in html.lower()


def test_numbers_that_are_not_comparable_have_no_delta_and_stand_in_their_own_block():
    comp = _compare(False, info=("status",))
    assert not comp.comparable
    assert list(comp.long.columns) == ["row", "item", "paper", "ours", "paper_rank", "ours_rank", "status"]
    wide = comp.wide()
    assert wide.columns.names == ["source", "item"]
    assert "delta" not in wide.columns.get_level_values("source")
    # the paper's block holds its own items only, ours its own (in the paper's order), then our per-row facts
    assert list(wide.columns) == [("paper", "b"), ("paper", "a"), ("paper", "Std."), ("ours (smoke)", "b"),
                                  ("ours (smoke)", "a"), ("ours (smoke)", "Std."), ("ours (smoke)", "extra"),
                                  ("ours (smoke)", "status")]
    assert wide.loc["r", ("ours (smoke)", "extra")] == pytest.approx(4.0)
    assert wide.loc["r", ("ours (smoke)", "status")] == "ok"  # the first of the row's values
    bold, under = _marks(comp.styled())
    assert bold == [("ours (smoke)", "b"), ("paper", "a")]
    assert under == [("ours (smoke)", "extra"), ("paper", "b")]
    html = comp.styled().to_html()
    assert "no delta" in html and "SMOKE PROFILE" in html and "nan" not in html.lower()


def test_missing_cells_show_a_dash():
    paper = pd.DataFrame({"row": ["r", "s"], "item": ["a", "a"], "value": [1.0, 2.0]})
    ours = pd.DataFrame({"row": ["r"], "item": ["a"], "value": [0.5]})
    for comparable in (True, False):
        comp = compare_with_paper(9, "t", paper, ours, ["row", "item"], "item", ["row"], ["item"], "paper", "imagenet",
                                  comparable=comparable)
        assert comp.wide().isna().any().any()
        html = comp.styled().to_html()
        assert "nan" not in html.lower() and ">-</td>" in html


def test_styled_table_shows_missing_cells_as_a_dash():
    frame = pd.DataFrame({"setting": ["perceptual", None], "step": [4.0, np.nan], "score": [0.12345, 0.5]})
    html = styled_table(frame, precision=2, caption="SMOKE").to_html()
    assert "nan" not in html.lower() and "None" not in html
    assert html.count(">-</td>") == 2 and ">0.12</td>" in html and "SMOKE" in html


def test_compare_with_paper_names_missing_columns():
    with pytest.raises(ConfigError, match=r"ours rows of Table 9 lack column\(s\) \['status'\]"):
        compare_with_paper(9, "t", PAPER, OURS.drop(columns="status"), ["row", "item"], "item", ["row"], ["item"],
                           "smoke", "random", info=("status",))


def test_comparability_is_decided_by_the_profile_and_the_data(tmp_path, monkeypatch):
    monkeypatch.setenv("ASYMLIB_DATA", str(tmp_path))
    assert numbers_comparable("paper") and numbers_comparable("pilot") and not numbers_comparable("smoke")
    assert "delta" in compare_with_paper(9, "t", PAPER, OURS, ["row", "item"], "item", ["row"], ["item"],
                                         "paper", "imagenet").long.columns
    # the paper's numbers come from ImageNet backbones: a paper-profile run on random or other weights is not
    assert numbers_comparable("paper", "imagenet(timm/vgg16.tv_in1k@abc/model.safetensors)")
    assert not numbers_comparable("paper", "random") and not numbers_comparable("paper", "/ckpt/d.pt")
    assert "delta" not in compare_with_paper(9, "t", PAPER, OURS, ["row", "item"], "item", ["row"], ["item"],
                                             "paper", "random").long.columns
    (tmp_path / REHEARSAL_MARKER).write_text("")
    assert not numbers_comparable("paper")
    comp = compare_with_paper(9, "t", PAPER, OURS, ["row", "item"], "item", ["row"], ["item"], "paper", "imagenet")
    assert not comp.comparable and "delta" not in comp.long.columns
    assert "rehearsal fixtures" in comp.styled().to_html()


def test_average_labels_name_the_evaluators_they_average():
    assert paper_averaged_evaluators(1) == ["MANIQA", "LIQE", "DeQA", "VQ-R1"]
    assert paper_averaged_evaluators(3) == ["MANIQA", "LIQE", "DeQA", "VQ-R1"]
    with pytest.raises(UnknownNameError):
        paper_averaged_evaluators(2)
    table = pd.DataFrame({"evaluator": ["PIQE", "PSNR", "SSIM", "Average", "LIQE"]})
    assert averaged_evaluators(table) == ["PIQE", "LIQE"]  # kinds from the registry: PSNR/SSIM are FR
    kinds = table.assign(kind=["nr", "fr", "fr", "nr", "fr"])
    assert averaged_evaluators(kinds) == ["PIQE"]  # a kind column wins
    assert average_label(["MANIQA", "LIQE"], ["PIQE"]) == "Average (paper: MANIQA, LIQE; ours: PIQE)"
    assert average_label(["MANIQA"], []) == "Average (paper: MANIQA; ours: no NR evaluator)"


def test_table3_comparison_labels_heads_and_the_average_column():
    t3 = pd.DataFrame([{"head": h, "backbone": b, "variant": v, "evaluator": ev, "score": s, "status": st}
                       for h, b, v, st, base in (("vanilla", "VGG-16", "VGG-16", "finished", 50.0),
                                                 ("patch", "DINOv2", "DINOv2 ViT-S/14", "collapsed", np.nan),
                                                 ("none", "w/o (base)", "w/o (base)", "finished", 40.0))
                       for ev, s in (("PIQE", base), ("PSNR", 20.0), ("Average", base))])
    comp = paper_comparison(3, t3, "smoke", "random")
    label = "Average (paper: MANIQA, LIQE, DeQA, VQ-R1; ours: PIQE)"
    wide = comp.wide()
    assert list(wide.index) == [("Vanilla", "VGG-16"), ("Vanilla", "ResNet-50"), ("Vanilla", "DINOv2"),
                                ("Patch-level", "VGG-16"), ("Patch-level", "ResNet-50"), ("Patch-level", "DINOv2"),
                                ("w/o", "w/o (base)")]
    assert [c for s, c in wide.columns if s == "paper"] == ["MANIQA", "LIQE", "DeQA", "VQ-R1", label]
    assert [c for s, c in wide.columns if s == "ours (smoke)"] == [label, "PIQE", "PSNR", "variant", "status"]
    assert wide.loc[("Patch-level", "ResNet-50"), ("paper", label)] == pytest.approx(63.92)
    assert wide.loc[("Patch-level", "DINOv2"), ("ours (smoke)", "variant")] == "DINOv2 ViT-S/14"
    assert wide.loc[("Patch-level", "DINOv2"), ("ours (smoke)", "status")] == "collapsed"
    assert np.isnan(wide.loc[("Patch-level", "DINOv2"), ("ours (smoke)", label)])
    assert wide.loc[("Vanilla", "VGG-16"), ("ours (smoke)", label)] == pytest.approx(50.0)
    assert set(comp.long["evaluator"]) == {"MANIQA", "LIQE", "DeQA", "VQ-R1", "Average", "PIQE", "PSNR"}
    long = comp.long.set_index(["head", "backbone", "evaluator"])
    assert long.loc[("vanilla", "VGG-16", "Average"), "ours_rank"] == 1  # the collapsed run is not ranked
    assert np.isnan(long.loc[("patch", "DINOv2", "Average"), "ours_rank"])


def test_table2_and_table4_comparisons_pair_srcc_and_plcc_per_benchmark():
    rows = [{"display": "VGG-16", "benchmark": b, "srcc": s, "plcc": s + 0.01, "weights_source": "random(seed=0)",
             "protocol": p} for b, s, p in (("synthetic levels, pooled", 0.5, "global"),
                                            ("Average", 0.6, "mean over synthetic levels, pooled"))]
    comp = paper_comparison(4, pd.DataFrame(rows), "paper", "imagenet", comparable=True)
    avg4 = "Average (paper: TID2013, Liu13, Ma17, TQD; ours: synthetic levels, pooled)"  # names both sides' sets
    assert list(comp.wide().columns[:6]) == [("TID2013", "SRCC", "paper"), ("TID2013", "SRCC", "ours (paper)"),
                                             ("TID2013", "SRCC", "delta"), ("TID2013", "PLCC", "paper"),
                                             ("TID2013", "PLCC", "ours (paper)"), ("TID2013", "PLCC", "delta")]
    assert comp.wide().loc["VGG-16", (avg4, "PLCC", "delta")] == pytest.approx(0.61 - 0.867)
    assert comp.long.set_index(["backbone", "benchmark", "statistic"]).loc[("VGG-16", "Average", "PLCC"), "ours"] \
        == pytest.approx(0.61)  # the long table keeps the raw key
    assert comp.wide().loc["VGG-16", ("weights", "", "ours (paper)")] == "random(seed=0)"
    fr = pd.DataFrame([{"paper_backbone": "DINOv2", "display": "DINOv2 ViT-S/14", "init_display": init,
                        "benchmark": "Average", "srcc": s, "plcc": s, "status": st, "weights_source": w}
                       for init, s, st, w in (("Random", 0.4, "ok", "random(seed=0)"), ("GAN", 0.5, "ok", "file(x)"),
                                              ("ImageNet", np.nan, "skipped: imagenet (not available offline)",
                                               "none"))])
    comp = paper_comparison(2, fr, "smoke", "random")
    wide = comp.wide()
    ours = wide["ours (smoke)"]
    avg2 = "Average (paper: TID2013, Liu13, Ma17, TQD; ours: the benchmarks)"  # no protocol column: unknown
    assert list(ours.columns) == [(avg2, "SRCC"), (avg2, "PLCC"), ("variant", ""), ("status", ""),
                                  ("weights", "")]
    assert ours.loc[("DINOv2", "ImageNet"), ("status", "")].startswith("skipped")
    assert ours.loc[("DINOv2", "GAN"), (avg2, "SRCC")] == pytest.approx(0.5)
    assert wide.loc[("DINOv2", "GAN"), ("paper", avg2, "SRCC")] == pytest.approx(0.685)
    long = comp.long.set_index(["backbone", "initialization", "benchmark", "statistic"])
    assert long.loc[("DINOv2", "GAN", "Average", "SRCC"), "ours_rank"] == 1
    assert long.loc[("DINOv2", "Random", "Average", "SRCC"), "ours_rank"] == 2
    # a fact we have for no row is left out rather than shown as a column of dashes
    unknown = paper_comparison(2, fr.assign(weights_source=np.nan), "smoke", "random").wide()["ours (smoke)"]
    assert [c for c, _ in unknown.columns][-2:] == ["variant", "status"]
    with pytest.raises(UnknownNameError):
        paper_comparison(5, fr, "smoke", "random")
