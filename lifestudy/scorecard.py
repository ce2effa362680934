"""The claims scorecard: each claim of the paper's abstract, and what our records say of it.

Every chapter writes its findings (:class:`lifestudy.report.Finding`, read from its own
records) to ``findings.json`` in its run folder; chapter 9 reads them all back
(:func:`lifestudy.report.read_findings`) and :func:`scorecard` turns them into one row per
claim of :data:`CLAIMS`: our verdict, the numbers behind it (each with its interval and
count), the paper's number and the chapters. Nothing in the table is typed by hand but the
claims' wording and the paper's numbers (:mod:`lifestudy.paper`).

The verdict rule (:func:`verdict`), in order:

1. no finding: **not resolved at this scale** (the chapter did not run);
2. any finding resting on a run that did not pass its schedule check (``converged`` is
   False): **not resolved at this scale**: an unconverged run says nothing of the claim;
3. a finding *supports* (or *contradicts*) the claim only where its 95 % interval excludes
   0 on the side the claim predicts (or the other); a fact without an interval (a count, a
   check) bears it out or not;
4. **supported** when at least one finding supports and none contradicts, **contradicted**
   in the mirror case, otherwise (none resolved, or both ways) **not resolved at this scale**.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from lifestudy import paper
from lifestudy.report import PAPER, Finding, section_id

__all__ = ["Claim", "CLAIMS", "SUPPORTED", "CONTRADICTED", "NOT_RESOLVED", "EFFICIENT_OVERHEAD_PCT", "verdict", "scorecard",
           "scorecard_table", "html_table", "paper_gain_text"]

SUPPORTED, CONTRADICTED, NOT_RESOLVED = "supported", "contradicted", "not resolved at this scale"

#: "Efficient", as our reading of the abstract: LIFE adds at most this many per cent of
#: parameters and of MACs to its baseline (the paper's own DeiT-T: +1.4 % and +0.8 %).
EFFICIENT_OVERHEAD_PCT = 5.0


def paper_gain_text(model: str = "DeiT-T") -> str:
    """The paper's top-1 gain of LIFE over ``model`` on its four datasets, as text."""
    base, life = paper.CLASSIFICATION[model], paper.CLASSIFICATION[f"{model}-LIFE"]
    gains = {d: life[d] - base[d] for d in ("cifar10", "cifar100", "tiny-imagenet", "imagenet100")}
    return f"{model}: " + ", ".join(f"{d} {g:+.2f}" for d, g in gains.items()) + " points"


def _vit_vs_cnn_text() -> str:
    c = paper.CLASSIFICATION
    return (f"ResNet-18 − DeiT-T: cifar10 {c['ResNet-18']['cifar10'] - c['DeiT-T']['cifar10']:+.2f}, "
            f"cifar100 {c['ResNet-18']['cifar100'] - c['DeiT-T']['cifar100']:+.2f} points")


def _efficiency_text() -> str:
    b, life = paper.COMPLEXITY["deit_tiny_patch16_224"], paper.COMPLEXITY["deit_tiny_patch16_224_life"]
    return (f"DeiT-T: +{100 * (life['params_m'] / b['params_m'] - 1):.1f} % parameters, "
            f"+{100 * (life['gmacs'] / b['gmacs'] - 1):.1f} % GMACs")


def _dense_text() -> str:
    det = paper.detection_rows("random", "DeiT-T")["encdec"]
    det_life = paper.detection_rows("random", "DeiT-T-LIFE")["encdec-life"]
    seg = paper.segmentation_rows("random")
    return (f"VOC mAP {det['map']:.2f} → {det_life['map']:.2f} (LIFE backbone and head); "
            f"Cityscapes mIoU {seg['DeiT-T']['miou']:.2f} → {seg['DeiT-T-LIFE']['miou']:.2f}")


@dataclass(frozen=True)
class Claim:
    """A claim of the paper's abstract, in our words, and where the book tests it."""

    key: str
    text: str
    chapters: tuple[str, ...]
    paper: str  # the paper's number for it (or what it shows instead)


#: The abstract's claims, in its order (arXiv 2305.08551).
CLAIMS: tuple[Claim, ...] = (
    Claim("vit_trails_cnn", "ViTs trail CNNs when trained on small datasets", ("02_classification",),
          _vit_vs_cnn_text()),
    Claim("peers_specific_or_costly", "Existing ways to add locality are architecture-specific or cost more",
          ("10_locality",), "stated, not measured"),
    Claim("life_efficient", "LIFE is memory- and computation-efficient", ("01_life_module", "07_efficiency"),
          _efficiency_text()),
    Claim("aux_tokens", "LIFE handles class and distillation tokens", ("04_distillation", "10_locality"),
          "DeiT-T-LIFE distilled (stated; no table row)"),
    Claim("small_data_gain", "LIFE improves ViTs' small-data classification",
          ("02_classification", "03_data_size"), paper_gain_text("DeiT-T")),
    Claim("dense_gain", "The gain extends to detection and segmentation", ("05_detection", "06_segmentation"),
          _dense_text()),
    Claim("rollout_maps", "Dense Attention Roll-Out gives class-specific attention maps", ("08_rollout",),
          "qualitative maps (figures)"),
)


def verdict(findings: Iterable[Finding]) -> str:
    """The claim's verdict from its findings (the rule of the module docstring)."""
    findings = list(findings)
    if not findings or any(f.converged is False for f in findings):
        return NOT_RESOLVED
    says = {f.says for f in findings}
    if "supports" in says and "contradicts" not in says:
        return SUPPORTED
    if "contradicts" in says and "supports" not in says:
        return CONTRADICTED
    return NOT_RESOLVED


def scorecard(findings: Iterable[Finding], claims: Iterable[Claim] = CLAIMS) -> list[dict]:
    """One row per claim: ``claim``, ``verdict``, ``ours`` (the findings, each with its
    number, interval and count), ``paper``, ``chapters`` and ``why`` (the rule that decided)."""
    findings = list(findings)
    rows = []
    for claim in claims:
        mine = [f for f in findings if f.claim == claim.key]
        v = verdict(mine)
        unconverged = [f for f in mine if f.converged is False]
        why = ("no records" if not mine else
               f"{len(unconverged)} finding(s) rest on runs that did not converge" if unconverged else
               f"{sum(f.says == 'supports' for f in mine)} support, {sum(f.says == 'contradicts' for f in mine)} "
               f"contradict, {sum(f.says not in ('supports', 'contradicts') for f in mine)} not resolved")
        rows.append({
            "claim": claim.text, "verdict": v, "findings": mine,
            "ours": [f"{f.what}: {f.text()} ({f.says})" for f in mine],
            "paper": claim.paper, "chapters": list(dict.fromkeys([*(f.chapter for f in mine)] or claim.chapters)),
            "why": why,
        })
    return rows


def scorecard_table(findings: Iterable[Finding], claims: Iterable[Claim] = CLAIMS, link=None):
    """:func:`scorecard` as a DataFrame for the book: one row per claim, our numbers one per
    line (HTML ``<br>``) with their intervals, the paper's number in the column labelled
    "paper", and links to the chapters' sections (``link(chapter, section) -> href``;
    default: ``<chapter>.html#<section>``). Display it with :func:`html_table`."""
    import html

    import pandas as pd

    link = link or (lambda chapter, section: f"{chapter}.html#{section_id(section)}")
    rows = []
    for row in scorecard(findings, claims):
        ours = "<br>".join(
            f'<a href="{link(f.chapter, f.section)}">{html.escape(f.what)}</a>: {html.escape(f.text())} '
            f"({f.says}{', not converged' if f.converged is False else ''})" for f in row["findings"]
        ) or "no records"
        rows.append({"claim": html.escape(row["claim"]), "verdict": f"<strong>{row['verdict']}</strong>",
                     "ours (95 % interval)": ours, f"{PAPER}": html.escape(row["paper"]),
                     "chapters": ", ".join(f'<a href="{c}.html">{int(c[:2])}</a>' for c in row["chapters"]),
                     "why": html.escape(row["why"])})
    return pd.DataFrame(rows)


def html_table(table) -> str:
    """A scorecard table as HTML (its cells hold links and line breaks, so not escaped)."""
    return table.to_html(index=False, escape=False, classes="scorecard", border=0)
