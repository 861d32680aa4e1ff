"""The prometheus source against a fake query_range server on 127.0.0.1."""

from __future__ import annotations

import json
import logging
import socket
import ssl
import threading
import urllib.parse
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import numpy as np
import pytest

from monitor.errors import ConfigError, QueryError, SourceError, SourceTimeoutError
from monitor.ports import TelemetrySource
from monitor.sources.prometheus import (
    PrometheusOptions,
    PrometheusSource,
    build,
    parse_options,
)

T0 = 1_700_000_000.0
FEATURES = ("latency", "rps")
EXPRS = {"latency": "histogram_quantile(0.99, rate(lat_bucket[5m]))", "rps": "sum(rate(req[1m]))"}

# An answer: (HTTP status, body, seconds to stall before answering).
Answer = tuple[int, bytes, float]


def matrix(*series: tuple[dict[str, str], list[tuple[float, str]]]) -> Answer:
    """A successful query_range answer with the given series."""
    result = [{"metric": m, "values": [[t, v] for t, v in values]} for m, values in series]
    body = {"status": "success", "data": {"resultType": "matrix", "result": result}}
    return 200, json.dumps(body).encode(), 0.0


class FakePrometheus:
    """Answers POST /<prefix>/api/v1/query_range from ``answer(params)``; records requests."""

    def __init__(self, tls: ssl.SSLContext | None = None) -> None:
        self.requests: list[dict[str, str]] = []
        self.paths: list[str] = []
        self.headers: list[dict[str, str]] = []  # of each request, names lower-cased
        self.answer: Callable[[dict[str, str]], Answer] = lambda p: matrix()
        self.release = threading.Event()  # ends every stall at teardown
        self.extra_headers: dict[str, str] = {}  # sent with every answer
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", 0))
                form = urllib.parse.parse_qs(self.rfile.read(length).decode())
                params = {k: v[0] for k, v in form.items()}
                fake.requests.append(params)
                fake.paths.append(self.path)
                fake.headers.append({k.lower(): v for k, v in self.headers.items()})
                status, body, stall = fake.answer(params)
                if stall:
                    fake.release.wait(stall)
                try:
                    self.send_response(status)
                    for name, value in fake.extra_headers.items():
                        self.send_header(name, value)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                except OSError:  # the client gave up waiting
                    pass

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        scheme = "http"
        if tls is not None:
            self.server.socket = tls.wrap_socket(self.server.socket, server_side=True)
            scheme = "https"
        self.url = f"{scheme}://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        self.thread.start()

    def close(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)


@pytest.fixture
def prom() -> Iterator[FakePrometheus]:
    fake = FakePrometheus()
    yield fake
    fake.close()


def src_options(url: str, **options: Any) -> PrometheusOptions:
    raw = {"url": url, "features": EXPRS, "step": "60s", "timeout": "2s", **options}
    parsed, problems = parse_options(raw)
    assert problems == [] and parsed is not None
    return parsed


def source(url: str, **options: Any) -> PrometheusSource:
    return build("checkout", FEATURES, src_options(url, **options))


def by_query(answers: dict[str, Answer]) -> Callable[[dict[str, str]], Answer]:
    return lambda params: answers[params["query"]]


# --------------------------------------------------------------------------- options


def test_parse_options_converts_durations_and_lists() -> None:
    raw = {"url": "http://p:9090", "features": EXPRS, "join_on": ["pod"]}
    options, problems = parse_options({**raw, "step": "30s", "timeout": "1m"})
    assert problems == [] and options is not None
    assert (options.step, options.timeout, options.join_on) == (30.0, 60.0, ("pod",))
    assert dict(options.features) == EXPRS
    default, _ = parse_options({"url": "https://p", "features": EXPRS})
    assert default is not None
    assert (default.step, default.timeout, default.join_on) == (60.0, 30.0, None)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ({"features": EXPRS}, "source.url: must be an http(s) URL"),
        ({"url": "ftp://p", "features": EXPRS}, "source.url: must be an http(s) URL"),
        ({"url": "http://p"}, "source.features: must be a mapping of each feature"),
        ({"url": "http://p", "features": {}}, "source.features: must be a mapping"),
        ({"url": "http://p", "features": {"rps": " "}}, "source.features.rps: must be a PromQL"),
        (
            {"url": "http://p", "features": EXPRS, "step": 0},
            "source.step: must be a duration such as '90s', '5m', '2h', '1d' or a positive "
            "number of seconds; got 0",
        ),
        ({"url": "http://p", "features": EXPRS, "timeout": "fast"}, "source.timeout: must be a"),
        ({"url": "http://p", "features": EXPRS, "join_on": ["1x"]}, "source.join_on: must be"),
        ({"url": "http://p", "features": EXPRS, "join_on": "pod"}, "source.join_on: must be"),
        # Shown as written ("got ()" before), and never __name__, which no two features share.
        (
            {"url": "http://p", "features": EXPRS, "join_on": []},
            "source.join_on: must be a non-empty list of label names other than __name__ (the "
            "metric's name, which differs between features); got []",
        ),
        (
            {"url": "http://p", "features": EXPRS, "join_on": ["pod", "__name__"]},
            "source.join_on: must be a non-empty list of label names other than __name__",
        ),
        (
            {"url": "http://p", "features": EXPRS, "max_points": 20000},
            "source.max_points: must be an int in [1, 11000]; got 20000",
        ),
        (
            {"url": "http://p", "features": EXPRS, "query": "up"},
            "source.query: must be omitted (unknown field; valid: basic_auth, bearer_token_file, "
            "features, headers, join_on, max_answer_bytes, max_points, retries, retry_backoff, "
            "step, timeout, tls, url); got 'up'",
        ),
    ],
)
def test_parse_options_names_the_field_of_each_problem(raw: dict, expected: str) -> None:
    options, problems = parse_options(raw)
    assert options is None
    rendered = [p.config("source") for p in problems]
    assert len(rendered) == 1 and rendered[0].startswith(expected), rendered


@pytest.mark.parametrize(
    ("features", "expected"),
    [
        (
            {"latency": "x"},
            "source.features: must be a mapping with a PromQL expression for every feature "
            "(missing ['rps']); got ['latency']",
        ),
        (
            {**EXPRS, "cpu": "x"},
            "source.features.cpu: must be one of the model's features ['latency', 'rps']; "
            "got 'cpu'",
        ),
    ],
)
def test_one_expression_per_feature_is_required(features: dict, expected: str) -> None:
    raw = {"url": "http://p", "features": features}
    assert parse_options(raw)[1] == []  # without the features there is nothing to compare
    options, problems = parse_options(raw, FEATURES)
    assert options is None and [p.config("source") for p in problems] == [expected]
    with pytest.raises(ConfigError) as info:
        build("checkout", FEATURES, PrometheusOptions(url="http://p", features=features))
    assert info.value.problems == [expected]


# --------------------------------------------------------------------------- reading


def test_series_are_joined_on_labels_and_time(
    prom: FakePrometheus, caplog: pytest.LogCaptureFixture
) -> None:
    a = {"__name__": "x", "instance": "a", "job": "api"}
    b = {"instance": "b", "job": "api"}
    prom.answer = by_query(
        {
            EXPRS["latency"]: matrix(
                (b, [(T0, "0.5"), (T0 + 60, "0.6")]),
                (a, [(T0, "0.1"), (T0 + 60, "NaN"), (T0 + 120, "0.3")]),
            ),
            EXPRS["rps"]: matrix(
                ({**a, "__name__": "y"}, [(T0, "10"), (T0 + 60, "+Inf"), (T0 + 120, "30")]),
                (b, [(T0 + 60, "60")]),  # b has no rps at T0: that row is dropped
            ),
        }
    )
    caplog.set_level(logging.INFO, logger="monitor.sources.prometheus")
    src = source(prom.url)
    assert isinstance(src, TelemetrySource)
    window = src.read_window(T0, T0 + 180)
    # Rows come by label set (sorted), then by time; NaN and +Inf pass through unjudged.
    expected = [[0.1, 10.0], [np.nan, np.inf], [0.3, 30.0], [0.6, 60.0]]
    np.testing.assert_array_equal(window.X, expected)
    assert window.features == FEATURES and window.model == "checkout"
    assert window.label == "prometheus [2023-11-14T22:13:20Z, 2023-11-14T22:16:20Z) step 60s"
    # Said at INFO: runs flagged drift on partial windows with nothing said (helper-92).
    assert caplog.messages == [
        "prometheus source of model 'checkout': the window [2023-11-14T22:13:20Z, "
        "2023-11-14T22:16:20Z) holds 4 row(s) of the 6 its 2 series would hold at step 60s "
        '(1 dropped as missing a feature); the least complete: {instance="b", job="api"}'
    ]


def test_a_window_nearly_whole_is_not_logged_and_a_target_gone_is(
    prom: FakePrometheus, caplog: pytest.LogCaptureFixture
) -> None:
    # Ten steps: one point missing of 20 is the usual lag of the newest scrape, quiet;
    # a target gone for half the window is said, by its labels, quoted as PromQL quotes
    # them (a line break in a value split the log line in two; helper-99).
    a, b = {"instance": "a"}, {"instance": 'b\n"x"'}
    whole = [(T0 + 60 * i, "1") for i in range(10)]
    caplog.set_level(logging.INFO, logger="monitor.sources.prometheus")
    for b_points, said in [(whole[:-1], False), (whole[:5], True)]:
        prom.answer = by_query(
            {e: matrix((a, whole), (b, b_points)) for e in (EXPRS["latency"], EXPRS["rps"])}
        )
        caplog.clear()
        assert source(prom.url).read_window(T0, T0 + 600).X.shape[0] == 10 + len(b_points)
        assert bool(caplog.messages) is said, caplog.messages
    assert caplog.messages[0].endswith(
        "holds 15 row(s) of the 20 its 2 series would hold at step 60s (0 dropped as missing "
        'a feature); the least complete: {instance="b\\n\\"x\\""}'
    )


def test_a_partial_join_window_after_window_is_logged_once_in_ten_minutes_of_data(
    prom: FakePrometheus, caplog: pytest.LogCaptureFixture
) -> None:
    # One feature's second series never joins: a first run logged the line at each of
    # its 576 reference windows (helper-111). Another set of series is said at once.
    # The ten minutes are the data's (the newest window end read), not the wall clock's,
    # which stands still here as in a backtest: one that replayed 175 windows in 50 s
    # said one line for an outage of six partial windows (prom F5).
    a, b, c = {"instance": "a"}, {"instance": "b"}, {"instance": "c"}
    src = PrometheusSource("checkout", FEATURES, src_options(prom.url), clock=lambda: 1000.0)
    caplog.set_level(logging.INFO, logger="monitor.sources.prometheus")

    def read(minute: int, other: dict[str, str]) -> None:
        start = T0 + 60 * minute
        whole = [(start + 60 * i, "1") for i in range(4)]
        prom.answer = by_query(
            {EXPRS["latency"]: matrix((a, whole), (other, whole)), EXPRS["rps"]: matrix((a, whole))}
        )
        src.read_window(start, start + 240)

    for minute in range(12):  # twelve windows a minute apart
        read(minute, b)
    # Older windows (a reference period read after the run's own window) are of the
    # newest window's time: held, as one run's burst of reads was.
    for minute in range(-30, -20):
        read(minute, b)
    read(12, c)
    lines = caplog.messages
    assert len(lines) == 3, lines
    assert lines[0].endswith('the least complete: {instance="b"}')
    # The tenth minute's line counts the nine windows held and its own.
    assert lines[1].endswith('the least complete: {instance="b"} (10 windows in the last 10m)')
    assert lines[2].endswith('the least complete: {instance="c"}')


def test_a_window_half_as_complete_as_the_one_said_is_said_at_once(
    prom: FakePrometheus, caplog: pytest.LogCaptureFixture
) -> None:
    # An outage: its first window held 110 rows of 150 and was said; the windows of 60
    # after it flagged drift with nothing in the log (h144 #3).
    a, b = {"instance": "a"}, {"instance": "b"}
    src = PrometheusSource("checkout", FEATURES, src_options(prom.url), clock=lambda: 1000.0)
    caplog.set_level(logging.INFO, logger="monitor.sources.prometheus")

    def read(minute: int, a_points: int, b_points: int) -> None:
        start = T0 + 60 * minute
        whole = [(start + 60 * i, "1") for i in range(8)]
        part = matrix((a, whole[:a_points]), (b, whole[:b_points]))
        prom.answer = by_query({EXPRS["latency"]: part, EXPRS["rps"]: part})
        src.read_window(start, start + 480)

    # Rows 14, 12, 10, 8, 7 and 14 of the 16 of two series; b the least complete in each.
    for minute, points in enumerate(((8, 6), (8, 4), (7, 3), (5, 3), (5, 2), (8, 6))):
        read(minute, *points)
    held = [line.split(" holds ")[1].split(" row(s)")[0] for line in caplog.messages]
    # 14 is said; 12 and 10 lack less than half of 16, as 14 did: held. 8 lacks half: said,
    # and 7 with it; 14 again is held as the first was.
    assert held == ["14", "8"], caplog.messages


def test_series_that_never_line_up_are_a_source_error_that_says_why(
    prom: FakePrometheus,
) -> None:
    # Half a second apart, or an extra label: a run said only "0 valid rows".
    a = {"instance": "a"}
    prom.answer = by_query(
        {
            EXPRS["latency"]: matrix((a, [(T0, "0.1"), (T0 + 60, "0.2")])),
            EXPRS["rps"]: matrix((a, [(T0 + 0.5, "10"), (T0 + 60.5, "20")])),
        }
    )
    with pytest.raises(SourceError) as info:
        source(prom.url).read_window(T0, T0 + 120)
    assert str(info.value).endswith(
        "none of the 4 row(s) of [2023-11-14T22:13:20Z, 2023-11-14T22:15:20Z) has every "
        "feature: series with the same labels share no timestamp (points off the step's grid)"
    )


def test_requests_carry_the_window_the_step_and_the_timeout(prom: FakePrometheus) -> None:
    source(prom.url + "/prom/").read_window(T0, T0 + 300)
    assert prom.paths == ["/prom/api/v1/query_range"] * 2
    assert [r["query"] for r in prom.requests] == [EXPRS["latency"], EXPRS["rps"]]
    # Points at T0 .. T0 + 240: the window ends before T0 + 300.
    first = dict(prom.requests[0])
    # Prometheus is given what is left of the read's deadline of 2 s.
    assert 0 < float(first.pop("timeout")) <= 2.0
    assert first == {
        "query": EXPRS["latency"],
        "start": "1700000000.000",
        "end": "1700000240.000",
        "step": "60.0",
    }


def test_points_outside_the_window_are_left_out(prom: FakePrometheus) -> None:
    series = ({"i": "a"}, [(T0 - 60, "1"), (T0, "2"), (T0 + 60, "3"), (T0 + 120, "4")])
    prom.answer = lambda params: matrix(series)
    np.testing.assert_array_equal(source(prom.url).read_window(T0, T0 + 120).X, [[2, 2], [3, 3]])


def test_join_on_restricts_the_labels_that_must_agree(prom: FakePrometheus) -> None:
    prom.answer = by_query(
        {
            EXPRS["latency"]: matrix(({"pod": "p1", "le": "0.5"}, [(T0, "1")])),
            EXPRS["rps"]: matrix(({"pod": "p1", "code": "200"}, [(T0, "2")])),
        }
    )
    with pytest.raises(SourceError) as caught:
        source(prom.url).read_window(T0, T0 + 60)  # their other labels differ
    assert str(caught.value).endswith(
        "has every feature: the series of 'latency' and 'rps' share no labels (see join_on): "
        '\'latency\' has {le="0.5", pod="p1"} where \'rps\' has {code="200", pod="p1"}'
    )
    joined = source(prom.url, join_on=["pod"]).read_window(T0, T0 + 60)
    np.testing.assert_array_equal(joined.X, [[1.0, 2.0]])


def test_a_feature_with_no_series_is_named(prom: FakePrometheus) -> None:
    # "the features' series differ in their labels or their timestamps, or a feature has
    # no series" left the user to find which.
    prom.answer = by_query(
        {EXPRS["latency"]: matrix(({"pod": "p1"}, [(T0, "1")])), EXPRS["rps"]: matrix()}
    )
    with pytest.raises(SourceError, match=r"has every feature: 'rps' returned no series$"):
        source(prom.url).read_window(T0, T0 + 60)


def test_series_that_collide_under_join_on_are_an_error(prom: FakePrometheus) -> None:
    prom.answer = lambda params: matrix(
        ({"pod": "p1", "code": "200"}, [(T0, "1")]),
        ({"pod": "p1", "code": "500"}, [(T0, "2")]),
    )
    with pytest.raises(SourceError, match=r"several series have the labels \{pod=\"p1\"\} at the"):
        source(prom.url, join_on=["pod"]).read_window(T0, T0 + 60)


def test_a_collision_says_at_how_many_steps_and_when(prom: FakePrometheus) -> None:
    # rate(x[5m]) of a restarted pod keeps values for its range after the pod's last
    # sample: the old and the new series overlap for a few steps, which the line shows
    # (two series of one instance throughout would overlap at every step; helper-111).
    old = [(T0 + 60 * i, "1") for i in range(7)]
    new = [(T0 + 60 * i, "2") for i in range(5, 10)]
    prom.answer = lambda params: matrix(
        ({"instance": "i1", "pod": "web-a"}, old), ({"instance": "i1", "pod": "web-b"}, new)
    )
    with pytest.raises(SourceError) as info:
        source(prom.url, join_on=["instance"]).read_window(T0, T0 + 600)
    assert (
        'several series have the labels {instance="i1"} at the same time, at 2 step(s) from '
        "2023-11-14T22:18:20Z to 2023-11-14T22:19:20Z; aggregate them in the expression "
        "(e.g. sum by (instance) (...))"
    ) in str(info.value)


def test_series_that_take_turns_under_join_on_are_one(prom: FakePrometheus) -> None:
    # A label outside join_on changed mid-window (the pod restarted): the old and the new
    # series never share a time, and the run failed as if they collided.
    prom.answer = lambda params: matrix(
        ({"instance": "a", "pod": "p2"}, [(T0 + 60, "3"), (T0 + 120, "4")]),
        ({"instance": "a", "pod": "p1"}, [(T0, "1")]),
    )
    window = source(prom.url, join_on=["instance"]).read_window(T0, T0 + 180)
    np.testing.assert_array_equal(window.X, [[1.0, 1.0], [3.0, 3.0], [4.0, 4.0]])


def test_long_windows_are_split_into_requests_that_add_up(prom: FakePrometheus) -> None:
    def ramp(params: dict[str, str]) -> Answer:
        start, end, step = (float(params[k]) for k in ("start", "end", "step"))
        times = np.arange(start, end + step / 2, step)
        scale = 1.0 if params["query"] == EXPRS["latency"] else 10.0
        return matrix(({"i": "a"}, [(float(t), repr(float(scale * (t - T0)))) for t in times]))

    prom.answer = ramp
    whole = source(prom.url).read_window(T0, T0 + 600)
    assert len(prom.requests) == 2
    prom.requests.clear()
    split = source(prom.url, max_points=3).read_window(T0, T0 + 600)
    np.testing.assert_array_equal(split.X, whole.X)
    np.testing.assert_array_equal(whole.X[:, 0], 60.0 * np.arange(10))
    spans = [(r["start"], r["end"]) for r in prom.requests if r["query"] == EXPRS["rps"]]
    # 10 points in requests of at most 3, neither overlapping nor leaving gaps.
    assert [(float(a) - T0, float(b) - T0) for a, b in spans] == [
        (0, 120),
        (180, 300),
        (360, 480),
        (540, 540),
    ]


# --------------------------------------------------------------------------- failures


@pytest.mark.parametrize(
    ("answer", "error", "message"),
    [
        (
            (400, b'{"status":"error","errorType":"bad_data","error":"parse error at char 5"}', 0),
            QueryError,
            r"answered HTTP 400: bad_data: parse error at char 5",
        ),
        (
            (503, b"Service Unavailable: too many queries", 0),
            SourceError,
            r"answered HTTP 503: Service Unavailable: too many queries",
        ),
        (
            (200, b'{"status":"error","errorType":"timeout","error":"query timed out"}', 0),
            SourceError,
            r"answered status 'error': timeout: query timed out",
        ),
        (
            (200, b"<!DOCTYPE html>\n<html><body>Please sign in</body></html>", 0),
            SourceError,
            r"not JSON: Expecting value: line 1 column 1 \(char 0\); it begins "
            r"'<!DOCTYPE html> <html><body>Please sign in</body></html>'$",
        ),
        (
            (200, b'{"status":"success","data":{"resultType":"vector","result":[]}}', 0),
            SourceError,
            r"answered a 'vector' where a 'matrix' was expected",
        ),
        (
            (
                200,
                b'{"status":"success","data":{"resultType":"matrix","result":'
                b'[{"metric":{},"values":[[1,"x"]]}]}}',
                0,
            ),
            SourceError,
            r"malformed sample",
        ),
        ((200, matrix()[1], 3.0), SourceTimeoutError, r"did not answer within 0.2s"),
        # What a tester's fake Prometheus sent; each was "internal" or read as a number.
        ((200, b"[" * 100_000 + b"]" * 100_000, 0), SourceError, "not JSON: maximum recursion"),
        (
            (200, b'{"status":"success","data":{"resultType":"matrix","result":null}}', 0),
            SourceError,
            r"answered a matrix whose result is 'None', not a list",
        ),
        (
            (
                200,
                b'{"status":"success","data":{"resultType":"matrix","result":'
                b'[{"metric":{},"values":[[1,true]]}]}}',
                0,
            ),
            SourceError,
            r"malformed sample in the answer: value True is not a sample value",
        ),
        (
            (
                200,
                b'{"status":"success","data":{"resultType":"matrix","result":'
                b'[{"metric":{},"values":[[1,"1_000"]]}]}}',
                0,
            ),
            SourceError,
            r"value '1_000' is not a sample value",
        ),
        (
            (
                200,
                '{"status":"success","data":{"resultType":"matrix","result":'
                '[{"metric":{},"values":[[1,"\u0661"]]}]}}'.encode(),
                0,
            ),
            SourceError,
            r"value '\u0661' is not a sample value",
        ),
        (
            (400, b'{"status":"error","error":"' + b"e" * 200_000 + b'"}', 0),
            SourceError,
            r"answered HTTP 400: 'e+\.\.\.e+' \(200000 characters\)$",
        ),
        (  # a proxy's text where the kind is: printed whole, 5,248 characters (helper-99)
            (200, b'{"status":"success","data":{"resultType":"m' + b"m" * 5000 + b'"}}', 0),
            SourceError,
            r"answered a 'm{80}' where a 'matrix' was expected$",
        ),
    ],
    ids=[
        "http-400",
        "http-503",
        "status-error",
        "not-json",
        "vector",
        "bad-sample",
        "slow",
        "deep-json",
        "null-result",
        "bool-value",
        "underscore-value",
        "other-script-digit",
        "long-error",
        "long-kind",
    ],
)
def test_failures_name_the_source_and_the_cause(
    prom: FakePrometheus, answer: Answer, error: type[Exception], message: str
) -> None:
    prom.answer = lambda params: answer
    read = source(prom.url, timeout=0.2)
    read._sleep = lambda s: None  # a retried 503 waits no jittered backoff into the deadline
    with pytest.raises(error, match=message) as info:
        read.read_window(T0, T0 + 60)
    text = str(info.value)
    assert text.startswith("prometheus source of model 'checkout': feature 'latency': ")
    assert prom.url + "/api/v1/query_range" in text
    if error is SourceError:
        assert not isinstance(info.value, SourceTimeoutError)


def test_connection_refused_is_a_source_error() -> None:
    with socket.socket() as s:  # a port that nothing listens on once the socket closes
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(SourceError, match=r"is unreachable: .*refused") as info:
        source(f"http://127.0.0.1:{port}").read_window(T0, T0 + 60)
    assert not isinstance(info.value, SourceTimeoutError)


def test_a_connect_timeout_is_a_timeout(monkeypatch: pytest.MonkeyPatch) -> None:
    # An unroutable address stands in for a server that never accepts; a sandbox may
    # refuse it at once, so the connect itself is made to time out.
    def create_connection(*args: Any, **kwargs: Any) -> Any:
        raise TimeoutError("timed out")

    monkeypatch.setattr(socket, "create_connection", create_connection)
    with pytest.raises(SourceTimeoutError, match="did not answer within 2s"):
        source("http://prometheus.invalid:9090").read_window(T0, T0 + 60)


def test_a_redirect_is_not_followed_and_says_where_it_points(prom: FakePrometheus) -> None:
    # It said only "answered HTTP 302: Found".
    prom.answer = lambda params: (302, b"", 0.0)
    prom.extra_headers = {"Location": "http://u:secret@other:9090/api/v1/query_range"}
    with pytest.raises(SourceError) as info:
        source(prom.url).read_window(T0, T0 + 60)
    assert str(info.value).endswith(
        "answered HTTP 302: Found (to 'http://***@other:9090/api/v1/query_range'; redirects "
        "are not followed: point url at the server)"
    )
