"""RFC 6587 framing on a byte stream, and the cleaning of one message."""

from hypothesis import given, settings
from hypothesis import strategies as st

from incidents.syslog.framing import FrameDecoder, message_text


def test_lf_terminated_messages_are_split_at_each_lf_and_lose_a_trailing_cr():
    decoder = FrameDecoder(1024)
    frames, oversized = decoder.feed(b"<13>one\n<13>two\r\n<13>thr")
    assert frames == [b"<13>one", b"<13>two"] and oversized == 0
    assert decoder.feed(b"ee\n") == ([b"<13>three"], 0)


def test_octet_counted_messages_may_hold_a_lf():
    decoder = FrameDecoder(1024)
    assert decoder.feed(b"11 <13>one\ntwo5 <13>x") == ([b"<13>one\ntwo", b"<13>x"], 0)


def test_framing_is_decided_per_frame_on_one_connection():
    decoder = FrameDecoder(1024)
    stream = b"<13>lf one\n9 <13>count<13>lf two\n203.0.113.7 - - [bare access line]\n"
    frames, _ = decoder.feed(stream)
    assert frames == [
        b"<13>lf one",
        b"<13>count",
        b"<13>lf two",
        b"203.0.113.7 - - [bare access line]",
    ]


def test_a_length_split_across_reads_waits_for_its_digits():
    decoder = FrameDecoder(1024)
    assert decoder.feed(b"1") == ([], 0)
    assert decoder.feed(b"2 <13>message") == ([], 0)
    assert decoder.feed(b"!") == ([b"<13>message!"], 0)


def test_an_oversized_lf_message_is_skipped_to_its_lf_and_counted_once():
    decoder = FrameDecoder(16)
    assert decoder.feed(b"<13>" + b"x" * 20) == ([], 1)
    assert decoder.buffered == 0
    assert decoder.feed(b"y" * 1000) == ([], 0)
    assert decoder.feed(b"zz\n<13>next\n") == ([b"<13>next"], 0)


def test_an_oversized_line_among_others_in_one_read_is_counted_and_the_others_kept():
    decoder = FrameDecoder(16)
    stream = b"<13>ok\r\n<13>" + b"x" * 20 + b"\r\n<13>also ok\n<13>" + b"y" * 20
    assert decoder.feed(stream) == ([b"<13>ok", b"<13>also ok"], 2)
    assert decoder.feed(b"yyy\n<13>next\n") == ([b"<13>next"], 0)


def test_an_oversized_octet_counted_message_is_skipped_by_its_length():
    decoder = FrameDecoder(16)
    assert decoder.feed(b"40 " + b"a" * 10) == ([], 1)
    assert decoder.buffered == 0
    assert decoder.feed(b"b" * 30 + b"6 <13>ok") == ([b"<13>ok"], 0)


def test_a_message_of_exactly_max_size_is_kept_in_both_framings():
    decoder = FrameDecoder(8)
    assert decoder.feed(b"12345678\r\n8 abcdefgh") == ([b"12345678", b"abcdefgh"], 0)


def test_blank_lines_are_not_messages():
    assert FrameDecoder(64).feed(b"\n\r\n<13>a\n\n") == ([b"<13>a"], 0)


def test_the_unterminated_last_message_is_given_back_at_the_end():
    decoder = FrameDecoder(64)
    decoder.feed(b"<13>no newline")
    assert decoder.finish() == b"<13>no newline"
    decoder.feed(b"30 <13>cut short")
    assert decoder.finish() is None


def test_ten_digits_are_no_length():
    frames, _ = FrameDecoder(64).feed(b"1234567890 is a line\n")
    assert frames == [b"1234567890 is a line"]


@settings(max_examples=300, deadline=None)
@given(
    messages=st.lists(
        st.tuples(
            st.booleans(), st.binary(min_size=1, max_size=40).filter(lambda m: b"\n" not in m)
        ),
        max_size=20,
    ),
    cuts=st.lists(st.integers(min_value=0, max_value=2000), max_size=10),
)
def test_any_split_of_a_stream_gives_the_same_messages(messages, cuts):
    stream = b""
    expected = []
    for counted, message in messages:
        if counted:
            stream += b"%d %s" % (len(message), message)
            expected.append(message)
        else:
            # LF framing: a message that looks like a length, or ends in CR, reads otherwise.
            message = b"<" + message
            stream += message + b"\n"
            expected.append(message.removesuffix(b"\r"))
    expected = [message for message in expected if message]
    decoder = FrameDecoder(64)
    frames = []
    position = 0
    for cut in sorted(cut % (len(stream) + 1) for cut in cuts) + [len(stream)]:
        frames += decoder.feed(stream[position:cut])[0]
        position = cut
    assert frames == expected


def test_message_text_decodes_utf8_and_drops_trailing_line_ends_and_nul():
    assert message_text("<13>héllo\r\n\x00".encode()) == "<13>héllo"


def test_control_characters_inside_a_message_are_escaped_as_rsyslog_does():
    assert message_text(b"<13>line one\nline two\tend\x1b[0m") == (
        "<13>line one#012line two\tend#033[0m"
    )


def test_a_message_with_nul_or_controls_in_non_utf8_is_binary():
    assert message_text(b"<13>a\x00b") is None
    assert message_text(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03") is None
    assert message_text(b"\xff\xfe\x01\x02") is None


def test_latin1_text_without_controls_is_kept_with_replacement_characters():
    assert message_text("<13>caf\xe9".encode("latin-1")) == "<13>caf\ufffd"
