"""The peers bench's pure parts: medians, ranges and percentiles, the SVG plot, the section written in place."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from bench.__main__ import kept_sections
from bench.peers.plot import Bar, nice_ceiling, render
from bench.peers.report import END, START, replace_between_markers
from bench.peers.stats import Spread, median, percentile

SVG = "{http://www.w3.org/2000/svg}"


def test_median_of_odd_and_even_counts() -> None:
    assert median([3.0, 1.0, 2.0]) == 2.0
    assert median([4.0, 1.0, 3.0, 2.0]) == 2.5
    with pytest.raises(ValueError):
        median([])


def test_nearest_rank_percentiles() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 0.5) == 50.0
    assert percentile(values, 0.99) == 99.0
    assert percentile([7.0], 0.99) == 7.0


def test_spread_text_shows_the_range_only_for_several_rounds() -> None:
    assert Spread.of([1200.0, 1000.0, 1100.0]).text() == "1,100 [1,000–1,200]"
    assert Spread.of([2.5]).text(2) == "2.50"


def test_axis_end_is_a_round_number_at_or_above_the_highest_value() -> None:
    assert nice_ceiling(1234) == 1500
    assert nice_ceiling(2000) == 2000
    assert nice_ceiling(2100) == 2500
    assert nice_ceiling(0) == 1.0


def test_plot_is_svg_with_one_bar_and_one_range_per_system() -> None:
    bars = [Bar("this <service>", Spread.of([2000, 1800, 2100]), highlight=True), Bar("peer", Spread.of([900]))]
    root = ET.fromstring(render(bars, "A & B", "jobs/s"))
    assert root.tag == f"{SVG}svg"
    texts = [t.text for t in root.iter(f"{SVG}text")]
    assert "this <service>" in texts and "A & B" in texts and "2,000 [1,800–2,100]" in texts
    bar_rects = [r for r in root.iter(f"{SVG}rect") if r.get("fill") != "white"]
    assert len(bar_rects) == 2
    widths = [float(r.get("width", "0")) for r in bar_rects]
    assert widths[0] > widths[1] > 0


def test_section_replaces_its_block_in_place_and_keeps_the_rest() -> None:
    old = f"# Benchmarks\n\nintro\n\n{START}\nold figures\n{END}\n\n## After\n"
    new = replace_between_markers(old, f"{START}\nnew figures\n{END}")
    assert new == f"# Benchmarks\n\nintro\n\n{START}\nnew figures\n{END}\n\n## After\n"
    assert replace_between_markers("# Benchmarks\n", f"{START}\nx\n{END}") == f"# Benchmarks\n\n{START}\nx\n{END}\n"


def test_full_report_keeps_sections_written_by_other_commands() -> None:
    document = f"# Benchmarks\n\n| table |\n\n{START}\npeers\n{END}\n"
    assert kept_sections(document) == [f"{START}\npeers\n{END}"]
    assert kept_sections("# Benchmarks\n") == []


def test_paired_ratio_is_the_median_of_each_rounds_ratio() -> None:
    from bench.peers.report import paired_ratio

    assert paired_ratio([100.0, 200.0, 50.0], [95.0, 210.0, 40.0]) == 0.95
    with pytest.raises(ValueError):
        paired_ratio([1.0], [1.0, 2.0])


def test_saved_results_come_back_with_their_systems() -> None:
    import pickle

    from bench.peers.rounds import FULL, Measured, Results, chosen
    from bench.peers.systems import SERVICE

    systems = chosen(["bullmq"])
    results = Results(FULL, systems, {s.key: Measured(c=[1.0]) for s in systems}, web={"plain": [2.0]})
    back = pickle.loads(pickle.dumps(results))
    assert back.systems == systems and back.systems[0] is SERVICE
    assert back.measured == results.measured and back.web == results.web
