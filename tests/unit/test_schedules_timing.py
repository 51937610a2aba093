"""Schedule timing: cron strings in several zones across both daylight-saving changes of 2026, intervals,
and the misfire arithmetic. Every time is given explicitly (a frozen clock): nothing waits."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from core.schedules.timing import ON_TIME, CronError, TimezoneError, Timing, check_cron, plan_firing, zone


def utc(*parts: int) -> float:
    return datetime(*parts, tzinfo=UTC).timestamp()  # type: ignore[arg-type,misc]


def local(tz: str, *parts: int, fold: int = 0) -> float:
    return datetime(*parts, tzinfo=ZoneInfo(tz), fold=fold).timestamp()  # type: ignore[arg-type,misc]


def due_times(timing: Timing, start: float, end: float) -> list[float]:
    found, moment = [], start
    while (moment := timing.next_after(moment)) <= end:
        found.append(moment)
    return found


# -- spring forward: a local time that does not exist fires once, at the first valid instant after --


@pytest.mark.parametrize(
    ("tz", "day", "first_valid"),
    [
        ("Europe/Paris", (2026, 3, 29), (3, 0)),  # 02:00 -> 03:00
        ("America/New_York", (2026, 3, 8), (3, 0)),  # 02:00 -> 03:00
        ("Australia/Sydney", (2026, 10, 4), (3, 0)),  # 02:00 -> 03:00, southern spring
    ],
)
def test_a_daily_time_in_the_spring_gap_fires_once_right_after_it(
    tz: str, day: tuple[int, int, int], first_valid: tuple[int, int]
) -> None:
    timing = Timing(cron="30 2 * * *", timezone=tz)
    start = local(tz, *day) - 86400  # the day before, at midnight
    fired = due_times(timing, start, start + 3 * 86400)
    assert len(fired) == 3  # one per day, none lost
    assert fired[1] == local(tz, *day, *first_valid)
    year, month, date = day
    assert fired[0] == local(tz, year, month, date - 1, 2, 30) and fired[2] == local(tz, year, month, date + 1, 2, 30)


def test_an_hourly_cron_skips_the_missing_hour_without_firing_twice() -> None:
    tz = "Europe/Paris"
    timing = Timing(cron="0 * * * *", timezone=tz)
    fired = due_times(timing, local(tz, 2026, 3, 29, 0, 30), local(tz, 2026, 3, 29, 4, 30))
    assert fired == [local(tz, 2026, 3, 29, 1, 0), local(tz, 2026, 3, 29, 3, 0), local(tz, 2026, 3, 29, 4, 0)]
    assert fired[1] - fired[0] == 3600  # 01:00 CET to 03:00 CEST is one real hour


# -- fall back: a local time that occurs twice fires once, at its first occurrence --


@pytest.mark.parametrize(
    ("tz", "expression", "day", "at"),
    [
        ("Europe/Paris", "30 2 * * *", (2026, 10, 25), (2, 30)),
        ("America/New_York", "30 1 * * *", (2026, 11, 1), (1, 30)),
        ("Australia/Sydney", "30 2 * * *", (2026, 4, 5), (2, 30)),
    ],
)
def test_a_daily_time_repeated_at_fall_back_fires_once_at_the_first_occurrence(
    tz: str, expression: str, day: tuple[int, int, int], at: tuple[int, int]
) -> None:
    timing = Timing(cron=expression, timezone=tz)
    start = local(tz, *day)  # midnight of the change
    fired = due_times(timing, start, start + 86400 + 3600)
    first = local(tz, *day, *at, fold=0)
    assert fired[0] == first
    assert local(tz, *day, *at, fold=1) not in fired  # the second occurrence, an hour later, is not a run
    assert len([t for t in fired if t < start + 25 * 3600 - 1]) == 1


def test_an_hourly_cron_fires_in_both_passes_of_the_repeated_hour() -> None:
    tz = "Europe/Paris"
    timing = Timing(cron="0 * * * *", timezone=tz)
    fired = due_times(timing, local(tz, 2026, 10, 25, 1, 30), local(tz, 2026, 10, 25, 3, 30))
    assert fired == [
        local(tz, 2026, 10, 25, 2, 0, fold=0),
        local(tz, 2026, 10, 25, 2, 0, fold=1),
        local(tz, 2026, 10, 25, 3, 0),
    ]
    assert [b - a for a, b in zip(fired, fired[1:], strict=False)] == [3600, 3600]  # every real hour, once


def test_a_zone_without_daylight_saving_and_utc() -> None:
    kolkata = Timing(cron="0 9 * * MON-FRI", timezone="Asia/Kolkata")
    fired = due_times(kolkata, utc(2026, 3, 1), utc(2026, 3, 8))  # Sunday 1 March .. Sunday 8 March
    assert [datetime.fromtimestamp(t, UTC).strftime("%a %H:%M") for t in fired] == [
        f"{day} 03:30" for day in ("Mon", "Tue", "Wed", "Thu", "Fri")
    ]
    assert due_times(Timing(cron="0 0 1 JAN,jul *"), utc(2026, 1, 1), utc(2027, 1, 1)) == [
        utc(2026, 7, 1),
        utc(2027, 1, 1),
    ]


def test_lists_ranges_steps_and_names() -> None:
    timing = Timing(cron="5,35 8-10/2 * * sat,SUN")
    fired = due_times(timing, utc(2026, 12, 4), utc(2026, 12, 7))  # Friday .. Monday
    assert [datetime.fromtimestamp(t, UTC).strftime("%a %H:%M") for t in fired] == [
        "Sat 08:05", "Sat 08:35", "Sat 10:05", "Sat 10:35", "Sun 08:05", "Sun 08:35", "Sun 10:05", "Sun 10:35",
    ]  # fmt: skip


# -- intervals --


def test_every_counts_from_creation() -> None:
    timing = Timing(every=60, anchor=1000.5)
    assert timing.first() == 1060.5
    assert timing.next_after(1060.5) == 1120.5 and timing.next_after(1119.0) == 1120.5
    assert timing.next_after(0) == 1060.5  # never before creation


# -- validation --


@pytest.mark.parametrize(
    ("expression", "field"),
    [
        ("61 * * * *", "minute"),
        ("* 24 * * *", "hour"),
        ("* * 0 * *", "day-of-month"),
        ("* * * 13 *", "month"),
        ("* * * FOO *", "month"),
        ("* * * * 8", "day-of-week"),
        ("*/0 * * * *", "minute"),
        ("* * *", "expression"),
        ("* * * * * *", "expression"),
    ],
)
def test_cron_errors_name_the_field(expression: str, field: str) -> None:
    with pytest.raises(CronError) as caught:
        check_cron(expression)
    assert caught.value.field == field
    assert field in str(caught.value)


def test_cron_is_normalized_and_zones_are_checked() -> None:
    assert check_cron("  0   3 * *  mon ") == "0 3 * * mon"
    assert zone("Europe/Paris").key == "Europe/Paris"
    for bad in ("Mars/Olympus", "../etc/passwd", ""):
        with pytest.raises(TimezoneError):
            zone(bad)


# -- misfires --


def test_a_due_time_found_on_time_fires_as_itself() -> None:
    timing = Timing(every=1, anchor=0)
    firing = plan_firing(timing, due=100, now=100 + ON_TIME, grace=300)
    assert (firing.due, firing.skipped, firing.next_due) == (100, 0, 101)


def test_missed_due_times_give_one_catch_up_run_for_the_newest() -> None:
    timing = Timing(every=1, anchor=0)
    firing = plan_firing(timing, due=100, now=120.4, grace=300)  # 100..120 missed: 21 due times
    assert (firing.due, firing.skipped, firing.next_due) == (120, 20, 121)


def test_missed_due_times_older_than_the_grace_are_all_skipped() -> None:
    timing = Timing(every=60, anchor=0)
    firing = plan_firing(timing, due=600, now=600 + 3600 + 30, grace=10)  # 61 due times, newest 30 s old
    assert (firing.due, firing.skipped, firing.next_due) == (None, 61, 4260)
    assert plan_firing(timing, due=600, now=4230, grace=30).due == 4200


def test_cron_misfires_are_counted_across_a_daylight_saving_change() -> None:
    tz = "Europe/Paris"
    timing = Timing(cron="0 * * * *", timezone=tz)
    due = local(tz, 2026, 10, 24, 23, 0)
    now = local(tz, 2026, 10, 25, 5, 10)  # 23:00 .. 05:00 with 02:00 twice: 8 due times
    firing = plan_firing(timing, due, now, grace=600)
    assert (firing.due, firing.skipped) == (local(tz, 2026, 10, 25, 5, 0), 7)
    assert firing.next_due == local(tz, 2026, 10, 25, 6, 0)


def test_the_next_due_time_after_a_misfire_is_in_the_future() -> None:
    timing = Timing(cron="*/5 * * * *")
    start = utc(2026, 6, 1)
    for late in (3, 299, 301, 86400 * 3 + 17):
        firing = plan_firing(timing, start, start + late, grace=300)
        assert firing.next_due > start + late
        assert firing.next_due - (start + late) <= 300
        assert firing.skipped + (firing.due is not None) == late // 300 + 1
        assert timedelta(seconds=firing.next_due - start).total_seconds() % 300 == 0
