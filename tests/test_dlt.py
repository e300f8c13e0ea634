from __future__ import annotations

import pytest

from django_exotel_sms.dlt import (
    DEFAULT_MAX_VAR_LENGTH,
    KINDS,
    DltRenderError,
    DltTemplateError,
    MatchResult,
    Placeholder,
    match,
    parse_template,
    render,
    validate_template,
)

ALL_TAGS = "{#var#} {#numeric#} {#alphanumeric#} {#url#} {#cbn#} {#email#}"
ORDER = "Dear {#var#}, your order {#numeric#} is out. Track: {#url#}"
SPECIAL = "Rs. 100 (approx) [x] * ? {#numeric#} $^ \\d+ {#var#} | a.b"

# ---------------------------------------------------------------- parsing


def test_parse_every_tag() -> None:
    assert KINDS == ("var", "numeric", "alphanumeric", "url", "cbn", "email")
    assert parse_template(ALL_TAGS) == [
        Placeholder("var", 0, 7),
        Placeholder("numeric", 8, 19),
        Placeholder("alphanumeric", 20, 36),
        Placeholder("url", 37, 44),
        Placeholder("cbn", 45, 52),
        Placeholder("email", 53, 62),
    ]


def test_parse_spans_slice_the_tags() -> None:
    body = "Hi {#Var#}{#NUMERIC#}!"
    spans = [body[p.start : p.end] for p in parse_template(body)]
    assert spans == ["{#Var#}", "{#NUMERIC#}"]


@pytest.mark.parametrize(
    "body", ["{#VAR#}", "{#Var#}", "{#NuMeRiC#}", "{#URL#}", "{#Cbn#}", "{#EMAIL#}"]
)
def test_tag_names_are_case_insensitive(body: str) -> None:
    (placeholder,) = parse_template(body)
    assert placeholder.kind == body[2:-2].lower()
    assert placeholder.tag == "{#" + body[2:-2].lower() + "#}"


def test_parse_no_placeholders() -> None:
    assert parse_template("Plain text with {braces}, # hashes, #{ and }#") == []


def test_braces_next_to_tags_are_fixed_text() -> None:
    assert parse_template("{{#var#}}") == [Placeholder("var", 1, 8)]


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ("Hello {#foo#}", "Unknown placeholder '{#foo#}' at position 6"),
        ("{##}", "Unknown placeholder '{##}' at position 0"),
        ("x {# var #}", "Unknown placeholder '{# var #}' at position 2"),
        ("{#var1#}", "Unknown placeholder '{#var1#}'"),
    ],
)
def test_unknown_tag(body: str, fragment: str) -> None:
    with pytest.raises(DltTemplateError) as excinfo:
        validate_template(body)
    message = str(excinfo.value)
    assert fragment in message
    assert "{#var#}, {#numeric#}, {#alphanumeric#}, {#url#}, {#cbn#}, {#email#}" in message


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("Hi {#var", "'{#' at position 3 has no closing '#}'"),
        ("Hi {#var {#numeric#}", "'{#' at position 3 has no closing '#}'"),
        ("{#}", "'{#' at position 0 has no closing '#}'"),
        ("Hi var#} there", "'#}' at position 6 has no opening '{#'"),
        ("{#var#} and #}", "'#}' at position 12 has no opening '{#'"),
    ],
)
def test_malformed_tag(body: str, message: str) -> None:
    with pytest.raises(DltTemplateError, match="^Malformed template") as excinfo:
        parse_template(body)
    assert message in str(excinfo.value)


@pytest.mark.parametrize("body", ["", "   ", "\n"])
def test_empty_template(body: str) -> None:
    with pytest.raises(DltTemplateError, match=r"^DLT template body is empty\.$"):
        validate_template(body)


def test_template_length_limit() -> None:
    validate_template("x" * 2000)
    with pytest.raises(DltTemplateError) as excinfo:
        validate_template("x" * 2001)
    assert str(excinfo.value) == "DLT template body is 2001 characters long; the limit is 2000."


def test_template_errors_are_value_errors() -> None:
    assert issubclass(DltTemplateError, ValueError)
    assert issubclass(DltRenderError, ValueError)


# ---------------------------------------------------------------- rendering


def test_render_positional() -> None:
    text = render(ORDER, ["Asha", 1234, "https://ex.co/t/9"])
    assert text == "Dear Asha, your order 1234 is out. Track: https://ex.co/t/9"


@pytest.mark.parametrize(
    "context",
    [
        {"var1": "Asha", "var2": "1234", "var3": "www.ex.co"},
        {"1": "Asha", "2": "1234", "3": "www.ex.co"},
        {1: "Asha", 2: 1234, 3: "www.ex.co"},
        {"3": "www.ex.co", 1: "Asha", "var2": "1234"},
    ],
)
def test_render_by_position_key(context: dict[object, object]) -> None:
    text = render(ORDER, context)  # type: ignore[arg-type]
    assert text == "Dear Asha, your order 1234 is out. Track: www.ex.co"


def test_render_every_tag() -> None:
    values = ["any thing\nat all", "0042", "AB12 cd", "HTTP://X.IN/a", "+91 98765-43210", "a@b.co"]
    assert render(ALL_TAGS, values) == " ".join(values)


def test_render_keeps_special_characters_and_does_not_reparse_values() -> None:
    text = render(SPECIAL, ["7", "{#numeric#}"])
    assert text == "Rs. 100 (approx) [x] * ? 7 $^ \\d+ {#numeric#} | a.b"


def test_render_adjacent_placeholders() -> None:
    assert render("{#numeric#}{#alphanumeric#}-", [12, "ab"]) == "12ab-"


def test_render_without_placeholders() -> None:
    assert render("Your account is active.", []) == "Your account is active."
    assert render("Your account is active.", {}) == "Your account is active."


@pytest.mark.parametrize(
    ("context", "message", "position", "kind"),
    [
        (["Asha", "1234"], "variable 3 ({#url#}) has no value", 3, "url"),
        ([], "variable 1 ({#var#}) has no value", 1, "var"),
        (["Asha", None, "www.ex.co"], "variable 2 ({#numeric#}) has no value", 2, "numeric"),
        (
            {"var1": "Asha", "var3": "www.ex.co"},
            "variable 2 ({#numeric#}) has no value",
            2,
            "numeric",
        ),
    ],
)
def test_render_missing_value(context: object, message: str, position: int, kind: str) -> None:
    with pytest.raises(DltRenderError) as excinfo:
        render(ORDER, context)  # type: ignore[arg-type]
    assert str(excinfo.value) == message
    assert (excinfo.value.position, excinfo.value.kind) == (position, kind)


@pytest.mark.parametrize(
    ("context", "message"),
    [
        (["Asha", "1", "www.ex.co", "extra"], "got 4 values but the template has 3 placeholder(s)"),
        (
            {"var1": "Asha", "var2": "1", "var3": "www.x.co", "var4": "x"},
            "extra value for key 'var4': the template has 3 placeholder(s)",
        ),
        ({"name": "Asha"}, "unknown variable key 'name'"),
        ({0: "Asha"}, "unknown variable key 0"),
        ({"var0": "Asha"}, "unknown variable key 'var0'"),
        ({True: "Asha"}, "unknown variable key True"),
        ({"1": "Asha", 1: "Ravi"}, "variable 1 is given more than once (key 1)"),
    ],
)
def test_render_bad_values(context: object, message: str) -> None:
    with pytest.raises(DltRenderError) as excinfo:
        render(ORDER, context)  # type: ignore[arg-type]
    assert str(excinfo.value).startswith(message)


@pytest.mark.parametrize("context", ["Asha", b"Asha", 42, None])
def test_render_rejects_non_collections(context: object) -> None:
    with pytest.raises(TypeError, match="context must be a sequence or a mapping"):
        render("Hi {#var#}", context)  # type: ignore[arg-type]


INVALID_VALUES = [
    ("numeric", "12.5", "is not numeric"),
    ("numeric", "12 3", "is not numeric"),
    ("numeric", "١٢", "is not numeric"),  # non-ASCII digits: str.isdigit() would pass
    ("alphanumeric", "AB-12", "is not alphanumeric"),
    ("alphanumeric", "café", "is not alphanumeric"),
    ("url", "ex.co/path", "is not a URL"),
    ("url", "https://", "is not a URL"),
    ("url", "http://a b", "is not a URL"),
    ("cbn", "12345", "is not a call-back number"),
    ("cbn", "1800-ABC-12", "is not a call-back number"),
    ("cbn", "1" * 21, "is not a call-back number"),
    ("email", "a@b", "is not an email address"),
    ("email", "a b@c.de", "is not an email address"),
    ("email", "@b.co", "is not an email address"),
    ("var", "", "is empty"),
    ("numeric", "", "is empty"),
]


@pytest.mark.parametrize(("kind", "value", "problem"), INVALID_VALUES)
def test_render_rejects_invalid_value(kind: str, value: str, problem: str) -> None:
    template = "Start {#var#} then {#" + kind + "#} end"
    with pytest.raises(DltRenderError) as excinfo:
        render(template, ["ok", value])
    error = excinfo.value
    expected_head = f"variable 2 ({{#{kind}#}})"
    assert str(error).startswith(expected_head)
    assert problem in str(error)
    if value:
        assert repr(value) in str(error)
    assert (error.position, error.kind, error.value) == (2, kind, value)


@pytest.mark.parametrize(
    ("kind", "value"),
    [
        ("numeric", "0042"),
        ("alphanumeric", "AB12 cd"),
        ("url", "https://ex.co/a?b=1"),
        ("url", "www.ex.co"),
        ("url", "HTTP://X.IN"),
        ("cbn", "180012"),
        ("cbn", "+91 98765-43210"),
        ("email", "a.b+c@ex.co.in"),
        ("var", "multi\nline, any ₹ chars"),
    ],
)
def test_render_accepts_valid_value(kind: str, value: str) -> None:
    assert render("[{#" + kind + "#}]", [value]) == f"[{value}]"


def test_length_limit_default() -> None:
    assert DEFAULT_MAX_VAR_LENGTH == 30
    assert render("Hi {#var#}", ["x" * 30]) == "Hi " + "x" * 30
    with pytest.raises(DltRenderError) as excinfo:
        render("Hi {#var#}", ["x" * 31])
    assert (
        str(excinfo.value)
        == f"variable 1 ({{#var#}}) {'x' * 31!r} is 31 characters; the limit is 30"
    )


def test_length_limit_custom() -> None:
    assert render("Hi {#var#}", ["x" * 50], max_var_length=50).endswith("x" * 50)
    with pytest.raises(DltRenderError, match="is 6 characters; the limit is 5"):
        render("Hi {#var#}", ["abcdef"], max_var_length=5)


def test_long_values_are_shortened_in_messages() -> None:
    with pytest.raises(DltRenderError) as excinfo:
        render("Hi {#var#}", ["y" * 500])
    message = str(excinfo.value)
    assert "is 500 characters" in message
    assert len(message) < 150


@pytest.mark.parametrize("limit", [0, -1])
def test_bad_limit(limit: int) -> None:
    with pytest.raises(ValueError, match="max_var_length must be at least 1"):
        render("Hi {#var#}", ["x"], max_var_length=limit)
    with pytest.raises(ValueError, match="max_var_length must be at least 1"):
        match("Hi {#var#}", "Hi x", max_var_length=limit)


def test_rendered_body_over_2000_characters() -> None:
    template = "x" * 1990 + "{#var#}"
    assert len(render(template, ["y" * 10])) == 2000
    with pytest.raises(DltRenderError, match="rendered SMS is 2001 characters long"):
        render(template, ["y" * 11])


def test_render_validates_template() -> None:
    with pytest.raises(DltTemplateError, match="Unknown placeholder"):
        render("Hi {#name#}", ["x"])


# ---------------------------------------------------------------- matching


def test_match_success() -> None:
    result = match(ORDER, "Dear Asha Rao, your order 1234 is out. Track: https://ex.co/t/9")
    assert result == MatchResult(True, ("Asha Rao", "1234", "https://ex.co/t/9"), "")


def test_match_every_tag() -> None:
    text = "any\nthing 0042 AB12 cd www.ex.co +91 98765-43210 a@b.co"
    result = match(ALL_TAGS, text)
    assert result.matched, result.reason
    assert result.values == (
        "any\nthing",
        "0042",
        "AB12 cd",
        "www.ex.co",
        "+91 98765-43210",
        "a@b.co",
    )


def test_match_special_characters_in_fixed_text() -> None:
    ok = match(SPECIAL, "Rs. 100 (approx) [x] * ? 55 $^ \\d+ hello | a.b")
    assert ok == MatchResult(True, ("55", "hello"), "")
    # '.' and '?' must be literal, not regex wildcards.
    bad = match(SPECIAL, "Rs5 100 (approx) [x] * ! 55 $^ \\d+ hello | aXb")
    assert bad.matched is False
    assert bad.reason == "text does not match the template's fixed wording"


def test_match_case_insensitive_tags() -> None:
    assert match("OTP {#NUMERIC#} for {#Var#}", "OTP 1234 for login").values == ("1234", "login")


def test_match_adjacent_placeholders() -> None:
    assert match("{#numeric#}{#alphanumeric#}.", "12ab.").values == ("1", "2ab")
    # Shorter splits leave a space in the email, so the search moves on.
    assert match("{#alphanumeric#}{#email#}", "Hi a@b.co").values == ("Hi ", "a@b.co")
    assert match("{#numeric#}{#url#}", "42www.ex.co").values == ("42", "www.ex.co")


def test_match_backtracks_to_a_valid_split() -> None:
    # Shortest-first would give var1='a'; only var1='a b' leaves a valid numeric.
    assert match("{#var#} {#numeric#}", "a b 7").values == ("a b", "7")


def test_match_without_placeholders() -> None:
    assert match("Your account is active.", "Your account is active.") == MatchResult(True, (), "")
    result = match("Your account is active.", "Your account is active. ")
    assert result == MatchResult(False, (), "text does not match the template's fixed wording")


@pytest.mark.parametrize(
    "text",
    [
        "Dear Asha,  your order 1234 is out. Track: www.ex.co",  # doubled space
        "Dear Asha, your order 1234 is out.\nTrack: www.ex.co",  # newline for space
        "dear Asha, your order 1234 is out. Track: www.ex.co",  # case
        "Dear Asha, your order 1234 is out.",
        "",
    ],
)
def test_match_fixed_wording_differs(text: str) -> None:
    assert match(ORDER, text) == MatchResult(
        False, (), "text does not match the template's fixed wording"
    )


@pytest.mark.parametrize(("kind", "value", "problem"), INVALID_VALUES)
def test_match_reports_invalid_value(kind: str, value: str, problem: str) -> None:
    template = "Start {#var#} then {#" + kind + "#} end"
    result = match(template, f"Start ok then {value} end")
    assert result.matched is False
    assert result.values == ()
    assert result.reason.startswith(f"variable 2 ({{#{kind}#}})")
    assert problem in result.reason


def test_match_reason_empty_value() -> None:
    result = match(ORDER, "Dear Asha, your order 1234 is out. Track: ")
    assert result == MatchResult(False, (), "variable 3 ({#url#}) is empty")


def test_match_reason_numeric() -> None:
    result = match(ORDER, "Dear Asha, your order abc is out. Track: www.ex.co")
    assert result.reason == "variable 2 ({#numeric#}) 'abc' is not numeric"


def test_match_length_limit_default_and_custom() -> None:
    text = "Dear " + "n" * 41 + ", your order 1 is out. Track: www.ex.co"
    result = match(ORDER, text)
    assert (
        result.reason
        == f"variable 1 ({{#var#}}) {'n' * 39 + '…'!r} is 41 characters; the limit is 30"
    )
    assert match(ORDER, text, max_var_length=41).matched
    assert match(ORDER, text, max_var_length=40).reason.endswith(
        "is 41 characters; the limit is 40"
    )
    assert match("Hi {#var#}", "Hi " + "x" * 30).matched
    assert not match("Hi {#var#}", "Hi " + "x" * 31).matched


def test_match_generic_var_allows_newlines() -> None:
    assert match("Note: {#var#}.", "Note: line1\nline2.").values == ("line1\nline2",)


def test_match_invalid_template_raises() -> None:
    with pytest.raises(DltTemplateError):
        match("Hi {#name#}", "Hi x")
    with pytest.raises(DltTemplateError):
        match("", "")


def test_render_then_match_round_trip() -> None:
    values = ["Asha", "1234", "https://ex.co/t/9"]
    assert match(ORDER, render(ORDER, values)).values == tuple(values)


def test_near_miss_with_many_placeholders_is_fast() -> None:
    # Every split of 200 words over 39 free variables must be ruled out; a backtracking
    # regex would take exponential time, the memoised search does not.
    template = "{#var#} " * 39 + "{#numeric#} end"
    result = match(template, "a " * 200 + "end")
    assert result.reason.startswith("variable 40 ({#numeric#}) 'a a a")
    adjacent = "{#numeric#}" * 12 + "!"
    assert match(adjacent, "1" * 200 + "x!").reason.startswith("variable 12 ({#numeric#})")
    too_long = match(adjacent, "1" * 361 + "!")  # 12 x 30 = 360 at most
    assert too_long.reason.endswith("is 350 characters; the limit is 30")
    values = match(adjacent, "1" * 300 + "!").values
    assert "".join(values) == "1" * 300
    assert len(values) == 12 and max(map(len, values)) == 30
