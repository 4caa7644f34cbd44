"""``kong_harness.router``: Kong's ``traditional_compatible`` router.

Sources in Kong's repository (each test names the one its rule comes from):
``kong/router/atc.lua``, ``kong/router/transform.lua``, ``kong/router/utils.lua``,
``kong/router/traditional.lua`` (path_handling v1), ``kong/tools/uri.lua``,
``kong/runloop/handler.lua``, ``kong/runloop/balancer/init.lua``, Kong's own unit spec
``spec/01-unit/08-router_spec.lua`` and fixture ``spec/fixtures/router_path_handling_tests.lua``,
and ``atc-router/src/router.rs`` / ``src/interpreter.rs``.
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kong_harness.entities import Route, Service
from kong_harness.router import (
    RegexTranslationError,
    Router,
    compat_priority,
    escape_uri,
    join_upstream_path,
    normalize_uri,
    split_host_port,
    translate_path_regex,
)

SERVICE = Service(
    id="5b1a5c1e-0000-4000-8000-000000000001", host="example.org", name="service-invalid"
)


def rid(n: int) -> str:
    """Route ids in the style of Kong's spec (e8fb37f1-...-6608a6bb81NN)."""
    return f"e8fb37f1-102d-461e-9c51-6608a6bb{8100 + n:04d}"


def route(n: int, service: Service | None = SERVICE, **kw: Any) -> Route:
    for key in ("paths", "hosts", "methods"):
        if key in kw:
            kw[key] = tuple(kw[key])
    if "headers" in kw:
        kw["headers"] = {k: tuple(v) for k, v in kw["headers"].items()}
    return Route(id=rid(n), service=service, **kw)


def matched(
    router: Router,
    method: str,
    host: str | None,
    path: str | bytes,
    headers: dict[str, Any] | None = None,
) -> Route | None:
    m = router.match(method, host, path, headers)
    return m.route if m else None


# ------------------------------------------------------------------------------------------
# Request path normalisation
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("/foo%3a", "/foo%3A"),  # reserved triplets are upper-cased
        ("/fo%6F", "/foo"),  # unreserved triplets are decoded
        ("/foo/./bar/../baz", "/foo/baz"),  # dot segments removed
        ("/foo//bar", "/foo/bar"),  # duplicate slashes merged
        ("/a/%2e%2E/b", "/b"),  # /%2e./ is the same as /../
        ("/a/../../b", "/b"),
        ("/%2541", "/%2541"),  # no double decoding
        ("/a%20b", "/a b"),  # "others" are decoded too
        ("/route./req", "/route./req"),  # only whole "." / ".." segments are dots
    ],
)
def test_normalize_uri_follows_kong(raw: str, expected: str) -> None:
    """Kong normalises the request URI before matching (kong/tools/uri.lua ``normalize``;
    the four steps are listed in Kong's docs "Path normalization")."""
    assert normalize_uri(raw, merge_slashes=True) == expected


def test_percent_encoded_request_matches_decoded_route() -> None:
    """Unreserved/other bytes are decoded before matching, reserved ones are not
    (kong/router/utils.lua ``strip_uri_args`` -> kong/tools/uri.lua ``normalize``)."""
    users = route(1, paths=["/users/john"])
    encoded_slash = route(2, paths=["/endel%2Fst"], strip_path=False)
    router = Router([users, encoded_slash])
    assert matched(router, "GET", "h", "/users/%6aohn") is users
    assert matched(router, "GET", "h", "/users/j%6Fhn/x") is users
    # spec 08-router_spec "allows url encoded paths if they are reserved characters"
    m = router.match("GET", "h", "/endel%2fst")
    assert m is not None and m.route is encoded_slash
    assert m.upstream_uri == "/endel%2Fst"
    assert matched(router, "GET", "h", "/endel/st") is None


def test_dot_segments_cannot_bypass_a_route() -> None:
    """``/public/../admin`` is routed as ``/admin`` (kong/tools/uri.lua dot removal)."""
    admin = route(1, paths=["/admin"])
    public = route(2, paths=["/public"])
    router = Router([admin, public])
    assert matched(router, "GET", "h", "/public/../admin/x") is admin
    assert matched(router, "GET", "h", "/public/%2E%2E/admin") is admin
    assert router.match("GET", "h", "/public//x").request_path == "/public/x"  # type: ignore[union-attr]


def test_query_string_is_not_part_of_the_path() -> None:
    """The path is cut at the first ``?`` (kong/router/utils.lua ``strip_uri_args``)."""
    exact = route(1, paths=["~/search$"], strip_path=False)
    router = Router([exact])
    m = router.match("GET", "h", "/search?q=/other")
    assert m is not None and m.route is exact
    assert m.upstream_uri == "/search"


def test_invalid_utf8_path_matches_nothing() -> None:
    """atc-router refuses non-UTF-8 paths; Kong logs and answers 404
    (spec 08-router_spec "gracefully handles invalid utf-8 sequences")."""
    router = Router([route(1, paths=["/"])])
    assert router.match("GET", "example.org", b"/\xfc\x80\x80\x80\x80\xaf") is None
    assert router.match("GET", "example.org", "/%FC%80") is None
    assert router.match("GET", "example.org", "/caf%C3%A9") is not None


def test_route_paths_are_not_normalised() -> None:
    """Since 3.0 route paths are used literally; only the request is normalised
    (spec 08-router_spec "normalization stopgap measurements")."""
    reserved = route(1, paths=["~/regex-reserved%2Fabc"])
    router = Router([reserved])
    assert matched(router, "GET", "h", "/regex-reserved%2Fabc") is reserved
    assert matched(router, "GET", "h", "/regex-reserved/abc") is None


# ------------------------------------------------------------------------------------------
# Paths and priorities
# ------------------------------------------------------------------------------------------


def test_longest_prefix_wins() -> None:
    """Prefix routes are ordered by path length (transform.lua ``get_priority`` max_length;
    Kong docs: "the longest paths get evaluated first")."""
    short = route(1, paths=["/service"])
    long = route(2, paths=["/service/resource"])
    router = Router([short, long])
    assert matched(router, "GET", "h", "/service/resource/1") is long
    assert matched(router, "GET", "h", "/service/other") is short
    assert matched(router, "GET", "h", "/servicex") is short  # plain prefix, no segment rule


segment = st.text(alphabet="abc", min_size=1, max_size=3)


@settings(max_examples=200, deadline=None)
@given(
    prefixes=st.lists(
        st.lists(segment, min_size=1, max_size=4),
        min_size=1,
        max_size=8,
        unique_by=lambda segs: "/".join(segs),
    ),
    request=st.lists(segment, min_size=1, max_size=6),
)
def test_longest_matching_prefix_always_wins(prefixes: list[list[str]], request: list[str]) -> None:
    """Whatever the routes, the longest plain prefix of the request path wins
    (transform.lua ``get_priority``: path length is the last priority field)."""
    paths = ["/" + "/".join(p) for p in prefixes]
    routes = [route(i, paths=[p]) for i, p in enumerate(paths, start=1)]
    router = Router(routes)
    req = "/" + "/".join(request)
    candidates = [r for r in routes if req.startswith(r.paths[0])]
    got = matched(router, "GET", "h", req)
    if not candidates:
        assert got is None
    else:
        assert got is max(candidates, key=lambda r: len(r.paths[0]))


def test_prefix_paths_are_anchored() -> None:
    """A plain path is a prefix match from the start (transform.lua ``OP_PREFIX`` ``^=``;
    spec "only matches [uri prefix] as a prefix (anchored mode)")."""
    router = Router([route(1, paths=["/my-route"])])
    assert matched(router, "GET", "h", "/foo/my-route") is None


def test_regex_paths_are_anchored_at_the_start_only() -> None:
    """``~`` paths get a ``^`` prefix and no ``$`` (transform.lua ``path_val_transform``)."""
    r = route(1, paths=[r"~/users/\d+"])
    router = Router([r])
    assert matched(router, "GET", "h", "/api/users/1") is None
    assert matched(router, "GET", "h", "/users/1/profile") is r


def test_regex_route_beats_longer_prefix_route() -> None:
    """With equal field counts a regex path outranks any prefix (REGEX_URL_BIT above
    max_length in transform.lua ``get_priority``)."""
    regex = route(1, paths=["~/api/.*"])
    prefix = route(2, paths=["/api/account"])
    router = Router([prefix, regex])
    assert matched(router, "GET", "h", "/api/account/getAll") is regex


def test_regex_priority_orders_regex_routes() -> None:
    """Higher ``regex_priority`` is evaluated first among regex routes (transform.lua
    ``get_priority``), whatever the route ids."""
    a = route(1, paths=[r"~/version/\d+/status/\d+"], regex_priority=6)
    b = route(2, paths=[r"~/version/.*"], regex_priority=0)
    assert matched(Router([a, b]), "GET", "h", "/version/1/status/2") is a
    a2 = route(1, paths=[r"~/version/\d+/status/\d+"], regex_priority=0)
    b2 = route(2, paths=[r"~/version/.*"], regex_priority=1)
    assert matched(Router([a2, b2]), "GET", "h", "/version/1/status/2") is b2


def test_regex_priority_is_ignored_for_prefix_paths() -> None:
    """Only regex paths use ``regex_priority`` (spec 08-router_spec "[prefix matching ignore
    regex_priority]"; transform.lua ``regex_url and route.regex_priority or 0``)."""
    r1 = route(1, paths=["~/.*"], hosts=["domain-1.org"])
    r2 = route(2, paths=["/"], hosts=["domain-2.org"], regex_priority=5)
    r3 = route(3, paths=["/v1"], hosts=["domain-2.org"])
    assert matched(Router([r1, r2, r3]), "GET", "domain-2.org", "/v1") is r3


def test_equal_priority_is_won_by_the_greater_route_uuid() -> None:
    """traditional_compatible has no created_at tie-break: atc-router keeps matchers in a
    ``BTreeMap<(priority, uuid)>`` iterated in reverse (atc-router/src/router.rs), so the
    greater UUID wins (spec "matches port-specific routes": ...8104 beats ...8102)."""
    low = route(1, paths=["/same"])
    high = route(2, paths=["/same"])
    assert matched(Router([low, high]), "GET", "h", "/same") is high
    assert matched(Router([high, low]), "GET", "h", "/same") is high


def test_route_with_more_fields_wins() -> None:
    """Match weight = number of configured fields (transform.lua ``get_priority``; Kong docs
    example with ``hosts`` vs ``hosts`` + ``methods``)."""
    hosts_only = route(1, hosts=["example.com"])
    hosts_post = route(2, hosts=["example.com"], methods=["POST"])
    router = Router([hosts_only, hosts_post])
    assert matched(router, "GET", "example.com", "/") is hosts_only
    assert matched(router, "POST", "example.com", "/") is hosts_post


def test_more_headers_beat_a_longer_path() -> None:
    """Header count ranks above path length (spec 08-router_spec "more [headers] has
    priority over longer [paths]")."""
    one = route(1, headers={"version": ["v1"]}, paths=["/my-route/hello"])
    two = route(2, headers={"version": ["v1"], "location": ["us-east"]}, paths=["/my-route"])
    router = Router([one, two])
    hdrs = {"version": ["v1"], "location": ["us-east"]}
    assert matched(router, "GET", "domain.org", "/my-route/hello", hdrs) is two
    assert matched(router, "GET", "domain.org", "/my-route/hello", {"version": "v1"}) is one


def test_plain_host_beats_wildcard_host() -> None:
    """PLAIN_HOST_ONLY_BIT (transform.lua ``get_priority``; spec "does not take precedence
    over a plain host")."""
    wildcard = route(9, hosts=["*.route.com"])
    plain = route(1, hosts=["plain.route.com"])
    router = Router([wildcard, plain])
    assert matched(router, "GET", "plain.route.com", "/") is plain
    assert matched(router, "GET", "foo.route.com", "/") is wildcard


def test_luajit_32bit_priority_quirk() -> None:
    """Kong computes match weight, header count and regex_priority with 32-bit LuaJIT shifts
    (transform.lua ``lshift_uint64`` rebinds its cdata upvalue, so ``bit.lshift`` sees Lua
    numbers) while REGEX_URL_BIT (bit 51) is a real 64-bit constant: a route with only a regex
    path outranks a route with methods + a prefix path. The documented layout says the
    opposite; ``exact_luajit_priority=False`` gives that one."""
    regex_only = route(1, paths=[r"~/items/\d+"])
    method_and_prefix = route(2, methods=["GET"], paths=["/items"])
    routes = [regex_only, method_and_prefix]
    assert matched(Router(routes), "GET", "h", "/items/1") is regex_only
    documented = Router(routes, exact_luajit_priority=False)
    assert matched(documented, "GET", "h", "/items/1") is method_and_prefix
    # the raw numbers LuaJIT produces (checked against LuaJIT 2.1's bit library)
    assert (
        compat_priority(
            match_weight=1,
            plain_host_only=False,
            headers_count=0,
            regex_url=True,
            regex_priority=0,
            uri_length=0,
        )
        == 2251800350556160
    )
    assert (
        compat_priority(
            match_weight=2,
            plain_host_only=False,
            headers_count=0,
            regex_url=False,
            regex_priority=0,
            uri_length=4,
        )
        == 1073741828
    )


@settings(max_examples=300, deadline=None)
@given(
    a=st.tuples(st.integers(1, 3), st.integers(0, 20), st.integers(1, 2000)),
    b=st.tuples(st.integers(1, 3), st.integers(0, 20), st.integers(1, 2000)),
)
def test_exact_priority_matches_documented_order_for_prefix_routes(
    a: tuple[int, int, int], b: tuple[int, int, int]
) -> None:
    """Without hosts or regexes and with at most 3 fields, the LuaJIT arithmetic orders routes
    exactly as documented: fields, then header count, then path length
    (transform.lua ``get_priority``)."""

    def prio(t: tuple[int, int, int], exact: bool) -> int:
        return compat_priority(
            match_weight=t[0],
            plain_host_only=False,
            headers_count=t[1],
            regex_url=False,
            regex_priority=0,
            uri_length=t[2],
            exact_luajit_priority=exact,
        )

    exact = (prio(a, True) > prio(b, True)) - (prio(a, True) < prio(b, True))
    documented = (a > b) - (a < b)
    assert exact == documented


def test_route_paths_are_split_by_kind_and_length() -> None:
    """Multi-path routes are split so each path group gets its own priority
    (transform.lua ``split_routes_and_services_by_path``; spec "[overlapping prefixes]" and
    "[both regex and prefix]")."""
    multi = route(1, paths=["/foo", "/foo/bar/baz"], hosts=["domain-1.org"])
    middle = route(2, paths=["/foo/bar"], hosts=["domain-1.org"])
    router = Router([multi, middle])
    assert matched(router, "GET", "domain-1.org", "/foo") is multi
    assert matched(router, "GET", "domain-1.org", "/foo/bar") is middle
    assert matched(router, "GET", "domain-1.org", "/foo/bar/baz/x") is multi

    mixed = route(3, paths=["~/some/thing/else", "/foo"], hosts=["domain-1.org"])
    longer = route(4, paths=["/foo/bar"], hosts=["domain-1.org"])
    router = Router([mixed, longer])
    assert matched(router, "GET", "domain-1.org", "/some/thing/else") is mixed
    assert matched(router, "GET", "domain-1.org", "/foo/bar") is longer


# ------------------------------------------------------------------------------------------
# Hosts, methods, headers
# ------------------------------------------------------------------------------------------


def test_wildcard_hosts() -> None:
    """``*.x`` is "ends with .x", ``x.*`` "starts with x." (transform.lua host ops; spec
    "matches leftmost/rightmost wildcards")."""
    left = route(1, hosts=["*.route.com"])
    right = route(2, hosts=["route.*"])
    router = Router([left, right])
    assert matched(router, "GET", "foo.route.com", "/") is left
    assert matched(router, "GET", "x.y.route.com", "/") is left
    assert matched(router, "GET", "route.org", "/") is right
    assert matched(router, "GET", "route.org:123", "/") is right  # any port
    assert matched(router, "GET", "route.com", "/") is right  # "route." prefix
    assert matched(router, "GET", "myroute.org", "/") is None
    assert matched(router, "GET", "route", "/") is None


def test_host_ports() -> None:
    """A host with ``:port`` also requires ``net.dst.port`` (transform.lua
    ``split_host_port``; spec "[host] ignores default port", "matches specific port",
    "fails just because of port on port-only route"); without a Host port, the listening
    port is used (fields.lua ``net.dst.port``)."""
    plain = route(1, hosts=["domain-1.org", "domain-2.org"])
    with_port = route(13, hosts=["domain-1.org:321", "domain-2.org"])
    port_only = route(14, hosts=["domain-3.org:321"])
    router = Router([plain, with_port, port_only])
    assert matched(router, "GET", "domain-1.org:80", "/") is plain
    assert matched(router, "GET", "domain-1.org:321", "/") is with_port
    assert matched(router, "GET", "domain-3.org:321", "/") is port_only
    assert matched(router, "GET", "domain-3.org:123", "/") is None
    assert matched(router, "GET", "domain-3.org", "/") is None  # listening on 8000
    assert router.match("GET", "domain-3.org", "/", server_port=321) is not None


def test_split_host_port_splits_at_first_colon() -> None:
    """transform.lua ``split_host_port``: IPv6 literals keep their colons."""
    assert split_host_port("example.com:8000") == ("example.com", 8000)
    assert split_host_port("example.com") == ("example.com", None)
    assert split_host_port("[::1]:80") == ("[::1]:80", None)


def test_methods() -> None:
    """Methods are compared exactly (transform.lua ``http.method ==``; spec "[method]")."""
    trace = route(2, methods=["TRACE"])
    post = route(6, methods=["POST", "PUT", "PATCH"], paths=["/route-6"])
    router = Router([trace, post])
    assert matched(router, "TRACE", "h", "/") is trace
    assert matched(router, "PUT", "h", "/route-6") is post
    assert matched(router, "GET", "h", "/route-6") is None
    assert matched(router, "trace", "h", "/") is None


def test_headers() -> None:
    """Header names are case-insensitive and ``-``/``_`` equivalent, values are compared
    lower-cased, ``~*`` values are unanchored lower-cased regexes, names AND, values OR
    (transform.lua ``any(lower(http.headers.*))``; spec "single/multiple [headers] value",
    "names are case-insensitive", "matches values in a case-insensitive way")."""
    single = route(9, headers={"location": ["my-location-1", "my-location-2"]})
    both = route(10, headers={"location": ["my-location-1"], "version": ["v1", "v2"]})
    ua = route(15, headers={"user_agent": [r"~*windows|linux|os\s+x\s*[\d\._]+|solaris|bsd"]})
    router = Router([single, both, ua])
    assert matched(router, "GET", "h", "/", {"Location": ["MY-LOCATION-2"]}) is single
    assert (
        matched(router, "GET", "h", "/", {"location": "my-location-1", "VERSION": ["v3", "V2"]})
        is both
    )
    assert matched(router, "GET", "h", "/", {"User-Agent": "Mozilla (X11; Linux x86_64)"}) is ua
    assert matched(router, "GET", "h", "/", {"user-agent": "curl/8"}) is None
    assert matched(router, "GET", "h", "/", {"location": "elsewhere"}) is None


def test_no_match_is_none() -> None:
    """No route -> ``None`` (Kong answers 404 "no Route matched with those values"; spec
    "misses")."""
    router = Router([route(1, hosts=["domain-1.org"], paths=["/a"], methods=["GET"])])
    assert router.match("GET", "domain-3.org", "/a") is None
    assert router.match("POST", "domain-1.org", "/a") is None
    assert router.match("GET", "domain-1.org", "/b") is None
    assert router.match("GET", None, "/a") is None
    assert Router([]).match("GET", "h", "/") is None


def test_routes_of_disabled_services_are_not_routed() -> None:
    """handler.lua ``new_router``: "routes where the services.enabled == false are not put in
    router"; service-less routes are."""
    disabled = Service(id="5b1a5c1e-0000-4000-8000-000000000002", host="x", enabled=False)
    off = route(1, service=disabled, paths=["/off"])
    serviceless = route(2, service=None, paths=["/serviceless"])
    router = Router([off, serviceless])
    assert router.match("GET", "h", "/off") is None
    m = router.match("GET", "h", "/serviceless/x")
    assert m is not None and m.service is None and m.upstream_host is None
    assert m.upstream_uri == "/x"


# ------------------------------------------------------------------------------------------
# Upstream URI: strip_path and path_handling
# ------------------------------------------------------------------------------------------

V0, V1 = "v0", "v1"
BOTH = (False, True)
# spec/fixtures/router_path_handling_tests.lua, row by row:
# (service_path, route_path, strip_path, path_handling, request_path, expected_path)
PATH_HANDLING_TABLE: list[tuple[Any, ...]] = [
    ("/", "/", BOTH, (V0, V1), "/", "/"),
    ("/", "/", BOTH, (V0, V1), "/route", "/route"),
    ("/", "/", BOTH, (V0, V1), "/route/", "/route/"),
    ("/", "/", BOTH, (V0, V1), "/routereq", "/routereq"),
    ("/", "/", BOTH, (V0, V1), "/route/req", "/route/req"),
    ("/", "/route", False, (V0, V1), "/route", "/route"),
    ("/", "/route", False, (V0, V1), "/route/", "/route/"),
    ("/", "/route", False, (V0, V1), "/routereq", "/routereq"),
    ("/", "/route", True, (V0, V1), "/route", "/"),
    ("/", "/route", True, (V0, V1), "/route/", "/"),
    ("/", "/route", True, (V0, V1), "/routereq", "/req"),
    ("/", "/route/", False, (V0, V1), "/route/", "/route/"),
    ("/", "/route/", False, (V0, V1), "/route/req", "/route/req"),
    ("/", "/route/", True, (V0, V1), "/route/", "/"),
    ("/", "/route/", True, (V0, V1), "/route/req", "/req"),
    ("/srv", "/rou", False, V0, "/roureq", "/srv/roureq"),
    ("/srv", "/rou", False, V1, "/roureq", "/srvroureq"),
    ("/srv", "/rou", True, V0, "/roureq", "/srv/req"),
    ("/srv", "/rou", True, V1, "/roureq", "/srvreq"),
    ("/srv/", "/rou", False, (V0, V1), "/rou", "/srv/rou"),
    ("/srv/", "/rou", True, V0, "/rou", "/srv"),
    ("/srv/", "/rou", True, V1, "/rou", "/srv/"),
    ("/service", "/", BOTH, (V0, V1), "/", "/service"),
    ("/service", "/", BOTH, V0, "/route", "/service/route"),
    ("/service", "/", BOTH, V1, "/route", "/serviceroute"),
    ("/service", "/", BOTH, V0, "/route/", "/service/route/"),
    ("/service", "/", BOTH, V1, "/route/", "/serviceroute/"),
    ("/service", "/", BOTH, V0, "/routereq", "/service/routereq"),
    ("/service", "/", BOTH, V1, "/routereq", "/serviceroutereq"),
    ("/service", "/", BOTH, V0, "/route/req", "/service/route/req"),
    ("/service", "/", BOTH, V1, "/route/req", "/serviceroute/req"),
    ("/service", "/route", False, V0, "/route", "/service/route"),
    ("/service", "/route", False, V1, "/route", "/serviceroute"),
    ("/service", "/route", False, V0, "/route/", "/service/route/"),
    ("/service", "/route", False, V1, "/route/", "/serviceroute/"),
    ("/service", "/route", False, V0, "/routereq", "/service/routereq"),
    ("/service", "/route", False, V1, "/routereq", "/serviceroutereq"),
    ("/service", "/route", True, (V0, V1), "/route", "/service"),
    ("/service", "/route", True, (V0, V1), "/route/", "/service/"),
    ("/service", "/route", True, V0, "/routereq", "/service/req"),
    ("/service", "/route", True, V1, "/routereq", "/servicereq"),
    ("/service", "/route/", False, V0, "/route/", "/service/route/"),
    ("/service", "/route/", False, V1, "/route/", "/serviceroute/"),
    ("/service", "/route/", False, V0, "/route/req", "/service/route/req"),
    ("/service", "/route/", False, V1, "/route/req", "/serviceroute/req"),
    ("/service", "/route/", True, V0, "/route/", "/service/"),
    ("/service", "/route/", True, V1, "/route/", "/service"),
    ("/service", "/route/", True, V0, "/route/req", "/service/req"),
    ("/service", "/route/", True, V1, "/route/req", "/servicereq"),
    ("/service/", "/", BOTH, V0, "/route/", "/service/route/"),
    ("/service/", "/", BOTH, V1, "/route/", "/service/route/"),
    ("/service/", "/", BOTH, (V0, V1), "/", "/service/"),
    ("/service/", "/", BOTH, (V0, V1), "/route", "/service/route"),
    ("/service/", "/", BOTH, (V0, V1), "/routereq", "/service/routereq"),
    ("/service/", "/", BOTH, (V0, V1), "/route/req", "/service/route/req"),
    ("/service/", "/route", False, (V0, V1), "/route", "/service/route"),
    ("/service/", "/route", False, (V0, V1), "/route/", "/service/route/"),
    ("/service/", "/route", False, (V0, V1), "/routereq", "/service/routereq"),
    ("/service/", "/route", True, V0, "/route", "/service"),
    ("/service/", "/route", True, V1, "/route", "/service/"),
    ("/service/", "/route", True, (V0, V1), "/route/", "/service/"),
    ("/service/", "/route", True, (V0, V1), "/routereq", "/service/req"),
    ("/service/", "/route/", False, (V0, V1), "/route/", "/service/route/"),
    ("/service/", "/route/", False, (V0, V1), "/route/req", "/service/route/req"),
    ("/service/", "/route/", True, (V0, V1), "/route/", "/service/"),
    ("/service/", "/route/", True, (V0, V1), "/route/req", "/service/req"),
    ("/", None, BOTH, (V0, V1), "/", "/"),
    ("/", None, BOTH, (V0, V1), "/route", "/route"),
    ("/", None, BOTH, (V0, V1), "/route/", "/route/"),
    ("/service", None, BOTH, (V0, V1), "/", "/service"),
    ("/service", None, BOTH, V0, "/route", "/service/route"),
    ("/service", None, BOTH, V1, "/route", "/serviceroute"),
    ("/service", None, BOTH, V0, "/route/", "/service/route/"),
    ("/service", None, BOTH, V1, "/route/", "/serviceroute/"),
    ("/service/", None, BOTH, (V0, V1), "/", "/service/"),
    ("/service/", None, BOTH, (V0, V1), "/route", "/service/route"),
    ("/service/", None, BOTH, (V0, V1), "/route/", "/service/route/"),
    ("/service", "/route", True, V0, "/route./req", "/service/req"),
    ("/service", "/route", True, V1, "/route./req", "/servicereq"),
    ("/service/", "/route", True, (V0, V1), "/route./req", "/service/req"),
    ("/service", "/route", True, V0, "/route%2E/req", "/service/req"),
    ("/service", "/route", True, V1, "/route%2E/req", "/servicereq"),
    ("/service/", "/route", True, (V0, V1), "/route%2E/req", "/service/req"),
    ("/service", "/route", True, V0, "/route%2e/req", "/service/req"),
    ("/service", "/route", True, V1, "/route%2e/req", "/servicereq"),
    ("/service/", "/route", True, (V0, V1), "/route%2e/req", "/service/req"),
    ("/service", "/route", True, V0, "/route../req", "/service/req"),
    ("/service", "/route", True, V1, "/route../req", "/servicereq"),
    ("/service/", "/route", True, (V0, V1), "/route../req", "/service/req"),
    ("/service", "/route", True, V0, "/route%2E%2E/req", "/service/req"),
    ("/service", "/route", True, V1, "/route%2E%2E/req", "/servicereq"),
    ("/service/", "/route", True, (V0, V1), "/route%2E%2E/req", "/service/req"),
    ("/service", "/route", True, V0, "/route%2e%2E/req", "/service/req"),
    ("/service", "/route", True, V1, "/route%2e%2E/req", "/servicereq"),
    ("/service/", "/route", True, (V0, V1), "/route%2e%2E/req", "/service/req"),
    ("/service", "/route", False, V0, "/route./req", "/service/route./req"),
    ("/service", "/route", False, V1, "/route./req", "/serviceroute./req"),
    ("/service/", "/route", False, (V0, V1), "/route./req", "/service/route./req"),
    ("/service", "/route", False, V0, "/route%2E/req", "/service/route./req"),
    ("/service", "/route", False, V1, "/route%2E/req", "/serviceroute./req"),
    ("/service/", "/route", False, (V0, V1), "/route%2E/req", "/service/route./req"),
    ("/service", "/route", False, V0, "/route%2e/req", "/service/route./req"),
    ("/service", "/route", False, V1, "/route%2e/req", "/serviceroute./req"),
    ("/service/", "/route", False, (V0, V1), "/route%2e/req", "/service/route./req"),
    ("/service", "/route", False, V0, "/route../req", "/service/route../req"),
    ("/service", "/route", False, V1, "/route../req", "/serviceroute../req"),
    ("/service/", "/route", False, (V0, V1), "/route../req", "/service/route../req"),
    ("/service", "/route", False, V0, "/route%2E%2E/req", "/service/route../req"),
    ("/service", "/route", False, V1, "/route%2E%2E/req", "/serviceroute../req"),
    ("/service/", "/route", False, (V0, V1), "/route%2E%2E/req", "/service/route../req"),
    ("/service", "/route", False, V0, "/route%2e%2E/req", "/service/route../req"),
    ("/service", "/route", False, V1, "/route%2e%2E/req", "/serviceroute../req"),
    ("/service/", "/route", False, (V0, V1), "/route%2e%2E/req", "/service/route../req"),
]


def _expand(handling: str) -> list[Any]:
    cases = []
    for line, (service_path, route_path, strips, handlings, request, expected) in enumerate(
        PATH_HANDLING_TABLE, start=1
    ):
        strips = strips if isinstance(strips, tuple) else (strips,)
        handlings = handlings if isinstance(handlings, tuple) else (handlings,)
        if handling not in handlings:
            continue
        for strip in strips:
            cases.append(
                pytest.param(
                    service_path,
                    route_path,
                    strip,
                    request,
                    expected,
                    id=f"{line}-{service_path}-{route_path}-strip={strip}-{request}",
                )
            )
    return cases


def _path_router(
    service_path: str, route_path: str | None, strip: bool, handling: str, regex: bool = False
) -> Router:
    service = Service(id="5b1a5c1e-0000-4000-8000-000000000003", host="upstream", path=service_path)
    if route_path is None:
        r = route(
            1, service=service, hosts=["localbin.com"], strip_path=strip, path_handling=handling
        )
    else:
        path = "~/[0]?" + route_path[1:] if regex else route_path
        r = route(1, service=service, paths=[path], strip_path=strip, path_handling=handling)
    return Router([r])


@pytest.mark.parametrize(
    ("service_path", "route_path", "strip", "request_path", "expected"), _expand(V0)
)
def test_path_handling_v0_table(
    service_path: str, route_path: str | None, strip: bool, request_path: str, expected: str
) -> None:
    """Kong's own table for strip_path / service path joining, path_handling v0
    (spec/fixtures/router_path_handling_tests.lua; kong/router/utils.lua
    ``get_upstream_uri_v0`` via atc.lua ``set_upstream_uri``)."""
    m = _path_router(service_path, route_path, strip, V0).match("GET", "localbin.com", request_path)
    assert m is not None
    assert m.upstream_uri == expected


@pytest.mark.parametrize(
    ("service_path", "route_path", "strip", "request_path", "expected"),
    [c for c in _expand(V0) if c.values[1] is not None],
)
def test_path_handling_v0_table_with_regex_paths(
    service_path: str, route_path: str, strip: bool, request_path: str, expected: str
) -> None:
    """Same table with the route path turned into a regex ``~/[0]?...`` (spec
    08-router_spec "#slash handling", second loop): the stripped part is the whole match."""
    m = _path_router(service_path, route_path, strip, V0, regex=True).match(
        "GET", "localbin.com", request_path
    )
    assert m is not None
    assert m.upstream_uri == expected


@pytest.mark.parametrize(
    ("service_path", "route_path", "strip", "request_path", "expected"), _expand(V1)
)
def test_path_handling_v1_table(
    service_path: str, route_path: str | None, strip: bool, request_path: str, expected: str
) -> None:
    """The v1 rows of Kong's table, for the ``traditional`` flavor's join
    (kong/router/traditional.lua ``find_match``), through :func:`join_upstream_path`."""
    normalized = normalize_uri(request_path)
    matched_prefix = None
    if route_path is not None:
        assert normalized.startswith(route_path)
        matched_prefix = route_path
    assert join_upstream_path(service_path, normalized, matched_prefix, strip, V1) == expected


def test_path_handling_v1_is_ignored_by_traditional_compatible() -> None:
    """traditional_compatible always joins with v0 (atc.lua ``set_upstream_uri`` calls
    ``get_upstream_uri_v0``; routes.lua: v1 "will not work under ... traditional_compatible")."""
    m = _path_router("/srv", "/rou", True, V1).match("GET", "h", "/roureq")
    assert m is not None
    assert m.upstream_uri == "/srv/req"  # v1 would give /srvreq


def test_strip_path_examples_from_kong_spec() -> None:
    """spec 08-router_spec "stripped paths #strip": prefix stripping, the plain path itself,
    strip_path=false, root ``/`` and regex stripping."""
    strip = route(1, paths=["/my-route", "/xx-route"], strip_path=True)
    keep = route(2, methods=["POST"], paths=["/my-route", "/xx-route"], strip_path=False)
    router = Router([strip, keep])
    assert router.match("GET", "h", "/my-route/hello/world").upstream_uri == "/hello/world"  # type: ignore[union-attr]
    assert router.match("GET", "h", "/xx-route").upstream_uri == "/"  # type: ignore[union-attr]
    post = router.match("POST", "h", "/my-route/hello/world")
    assert post is not None and post.route is keep
    assert post.upstream_uri == "/my-route/hello/world"
    root = Router([route(3, paths=["/"], strip_path=True)])
    assert root.match("POST", "h", "/my-route/hello/world").upstream_uri == (  # type: ignore[union-attr]
        "/my-route/hello/world"
    )
    regex = Router([route(4, paths=[r"~/users/(\d+)/profile"], strip_path=True)])
    m = regex.match("GET", "h", "/users/123/profile/hello/world")
    assert m is not None and m.matched_path == "/users/123/profile"
    assert m.upstream_uri == "/hello/world"


def test_upstream_uri_is_percent_escaped() -> None:
    """handler.lua sets ``var.upstream_uri = escape(match_t.upstream_uri)``
    (kong/tools/uri.lua ``escape``); spec "works with special characters"."""
    router = Router([route(1, paths=["/"], strip_path=False)])
    assert router.match("GET", "h", "/a%20b").upstream_uri == "/a%20b"  # type: ignore[union-attr]
    assert router.match("GET", "h", "/caf%C3%A9").upstream_uri == "/caf%C3%A9"  # type: ignore[union-attr]
    assert router.match("GET", "h", '/\\d"').upstream_uri == "/%5Cd%22"  # type: ignore[union-attr]
    assert escape_uri("/a:b@c!$&'()*+,;=~") == "/a:b@c!$&'()*+,;=~"


# ------------------------------------------------------------------------------------------
# Captures, upstream host
# ------------------------------------------------------------------------------------------


def test_uri_captures_from_regex() -> None:
    """Positional and named groups, plus [0] = whole match (atc-router interpreter.rs; spec
    "returns uri_captures from a [uri regex]"), wrapped as kong.request.get_uri_captures
    returns them (kong/pdk/request.lua ``capture_wrap``)."""
    r = route(1, paths=[r"~/users/(?P<user_id>\d+)/profile/?(?P<scope>[a-z]*)"])
    m = Router([r]).match("GET", "domain.org", "/users/1984/profile/email")
    assert m is not None
    assert m.uri_captures == {
        "unnamed": {0: "/users/1984/profile/email", 1: "1984", 2: "email"},
        "named": {"user_id": "1984", "scope": "email"},
    }
    m = Router([r]).match("GET", "domain.org", "/users/1984/profile")
    assert m is not None and m.uri_captures["named"]["scope"] == ""


def test_uri_captures_edge_cases() -> None:
    """Non-participating groups are absent (spec "Fix #13014"), ``(?<name>)`` works (Kong
    rewrites ``?<`` to ``?P<``), captures see the normalised path (spec "fix #7913"), and
    prefix routes or group-less regexes have none (atc.lua ``has_capture``)."""
    optional = Router([route(1, paths=[r"~/(users/)?1984/(?<subpath>profile)$"])])
    m = optional.match("GET", "h", "/1984/profile")
    assert m is not None
    assert 1 not in m.uri_captures["unnamed"]
    assert m.uri_captures["named"] == {"subpath": "profile"}

    normalized = Router([route(2, paths=[r"~/users/(?P<fullname>[a-zA-Z\s\d%]+)/profile"])])
    m = normalized.match("GET", "h", "/users/%6aohn%20doe/profile")
    assert m is not None and m.uri_captures["named"]["fullname"] == "john doe"

    empty = {"unnamed": {}, "named": {}}
    assert (
        Router([route(3, paths=["/hello"])])
        .match(  # type: ignore[union-attr]
            "GET", "h", "/hello/world"
        )
        .uri_captures
        == empty
    )
    assert (
        Router([route(4, paths=[r"~/users/\d+/profile"])])
        .match(  # type: ignore[union-attr]
            "GET", "h", "/users/1/profile"
        )
        .uri_captures
        == empty
    )


def test_regex_dollar_is_end_of_text() -> None:
    """atc-router uses Rust ``regex``, whose ``$`` does not match before a trailing newline
    (unlike Python's); ``%0A`` is decoded by kong/tools/uri.lua ``normalize``."""
    r = route(1, paths=["~/foo$"])
    router = Router([r])
    assert matched(router, "GET", "h", "/foo") is r
    assert matched(router, "GET", "h", "/foo%0A") is None


def test_regex_features_rust_lacks_are_rejected() -> None:
    """Kong hands regexes to atc-router's Rust ``regex`` (transform.lua
    ``path_val_transform``), which has no look-around or backreferences; Unicode classes
    exist in Rust but not in Python ``re``, so the harness refuses them clearly."""
    with pytest.raises(RegexTranslationError) as info:
        translate_path_regex("/(?=x)")
    assert info.value.rust_rejects
    with pytest.raises(RegexTranslationError) as info:
        translate_path_regex(r"/(a)\1")
    assert info.value.rust_rejects
    with pytest.raises(RegexTranslationError) as info:
        translate_path_regex(r"/\p{L}+")
    assert not info.value.rust_rejects
    with pytest.raises(RegexTranslationError) as info:
        translate_path_regex("/a(?i)b")  # Rust allows flags mid-pattern, Python does not
    assert not info.value.rust_rejects
    assert translate_path_regex(r"/\x{41}").match("/A")
    assert translate_path_regex(r"(?i)/abc").match("/ABC")


def test_upstream_host() -> None:
    """preserve_host sends the request Host (with port) upstream (atc.lua ``matching``;
    spec "uses the request's Host header incl. port"); otherwise the service host, with
    ``:port`` unless it is the scheme's default (balancer/init.lua ``set_host_header``)."""
    svc = Service(id="5b1a5c1e-0000-4000-8000-000000000004", host="backend", port=8080)
    svc80 = Service(id="5b1a5c1e-0000-4000-8000-000000000005", host="backend", port=80)
    keep = route(1, service=svc, paths=["/keep"], preserve_host=True)
    plain = route(2, service=svc, paths=["/plain"])
    default_port = route(3, service=svc80, paths=["/p80"])
    router = Router([keep, plain, default_port])
    assert router.match("GET", "api.example.com:8000", "/keep").upstream_host == (  # type: ignore[union-attr]
        "api.example.com:8000"
    )
    assert router.match("GET", "api.example.com", "/plain").upstream_host == "backend:8080"  # type: ignore[union-attr]
    assert router.match("GET", "api.example.com", "/p80").upstream_host == "backend"  # type: ignore[union-attr]
    no_host = router.match("GET", None, "/keep")
    assert no_host is not None and no_host.upstream_host == "backend:8080"


def test_split_route_ids_are_kongs() -> None:
    """Split routes get ``uuid5(7f145bf9-0dce-4f91-98eb-debbce4b9f6b, "<id>#<n>")``
    (transform.lua ``uuid_generator``), which decides ties among them."""
    r = route(1, paths=["/a", "/bb"])
    router = Router([r])
    ns = uuid.UUID("7f145bf9-0dce-4f91-98eb-debbce4b9f6b")
    expected = {uuid.uuid5(ns, f"{r.id}#1"), uuid.uuid5(ns, f"{r.id}#2")}
    assert {c.uuid for c in router._candidates} == expected
