"""Private: what simple shell commands print, computed without running anything. Pure.

:mod:`.shell` asks here for the output of ``echo``, ``printf``, ``rev``, ``base64 -d``,
``xxd -r`` and ``tr`` when every input is known (:func:`literal_output`), so that a command
built from such output is judged as what it really runs. :func:`decode_escapes` and
:func:`printf_output` follow bash's rules; :func:`ascii_shape` keeps byte offsets stable
for the parser.
"""

from __future__ import annotations

import base64
import binascii
import re
from typing import Final

from impromptu_ops.gate.vocabulary import Val, join

_SIMPLE_ESC: Final = {"n": "\n", "t": "\t", "r": "\r", "a": "\a", "b": "\b", "e": "\x1b",
                      "E": "\x1b", "f": "\f", "v": "\v", "\\": "\\", "'": "'", '"': '"',
                      "?": "?"}


def decode_escapes(text: str, octal_needs_zero: bool = False) -> str:
    """``\\xHH``, ``\\NNN`` (or ``\\0NNN``), ``\\uXXXX`` and the C escapes, as printf and
    ``$'..'`` read them."""
    out: list[str] = []
    i = 0
    while i < len(text):
        ch = text[i]
        if ch != "\\" or i + 1 >= len(text):
            out.append(ch)
            i += 1
            continue
        nxt = text[i + 1]
        m = re.match(r"x([0-9a-fA-F]{1,2})|u([0-9a-fA-F]{1,4})|U([0-9a-fA-F]{1,8})|"
                     + (r"0([0-7]{1,3})" if octal_needs_zero else r"0?([0-7]{1,3})"),
                     text[i + 1:])
        if m:
            hexa, u4, u8, octal = m.groups()
            code = int(hexa, 16) if hexa else int(u4 or u8, 16) if (u4 or u8) else int(
                octal, 8)
            out.append(chr(min(code, 0x10FFFF)))
            i += 1 + m.end()
        elif nxt in _SIMPLE_ESC:
            out.append(_SIMPLE_ESC[nxt])
            i += 2
        else:
            out.append(ch)
            i += 1
    return "".join(out)


def printf_output(args: list[str]) -> str:
    """What ``printf FORMAT ARGS...`` prints (%s, %b, %c, %d and escapes; enough to see
    through the obfuscations)."""
    if not args:
        return ""
    fmt, rest = args[0], list(args[1:])
    out: list[str] = []
    first = True
    while first or rest:
        first = False
        pieces = re.split(r"(%[-+ #0-9.]{0,10}[sbcdiuxXo%])", fmt)
        used = False
        for piece in pieces:
            if re.fullmatch(r"%[-+ #0-9.]{0,10}[sbcdiuxXo%]", piece):
                conv = piece[-1]
                if conv == "%":
                    out.append("%")
                    continue
                arg = rest.pop(0) if rest else ""
                used = True
                if conv == "b":
                    out.append(decode_escapes(arg, octal_needs_zero=True))
                elif conv == "c":
                    out.append(arg[:1])
                elif conv in "diuxXo":
                    try:
                        n = int(arg, 0) if arg else 0
                    except ValueError:
                        n = ord(arg[1]) if arg[:1] in "'\"" and len(arg) > 1 else 0
                    out.append({"x": f"{n:x}", "X": f"{n:X}", "o": f"{n:o}"}.get(conv, str(n)))
                else:
                    out.append(arg)
            else:
                out.append(decode_escapes(piece))
        if not used:
            break
    return "".join(out)


def ascii_shape(data: bytes) -> bytes:
    """``data`` with every non-ASCII byte replaced by ``x``: the same length and, for bash
    (which splits words on ASCII only), the same structure. tree-sitter-bash 0.25.1 crashes
    the process on some non-ASCII input (``{`` U+E6259 ``}`` is enough); the parser reads
    this shape, while every word's text is taken from the original bytes."""
    return data.translate(_ASCII_SHAPE)


_ASCII_SHAPE: Final = bytes(b if b < 0x80 else 0x78 for b in range(256))


def _tr_set(spec: str) -> str:
    classes = {"[:lower:]": "abcdefghijklmnopqrstuvwxyz",
               "[:upper:]": "ABCDEFGHIJKLMNOPQRSTUVWXYZ", "[:digit:]": "0123456789"}
    for k, v in classes.items():
        spec = spec.replace(k, v)
    out: list[str] = []
    i = 0
    while i < len(spec):
        if i + 2 < len(spec) and spec[i + 1] == "-":
            out += [chr(c) for c in range(ord(spec[i]), ord(spec[i + 2]) + 1)][:256]
            i += 3
        else:
            out.append(spec[i])
            i += 1
    return "".join(out)


def literal_output(name: str, argv: list[Val], stdin: Val | None) -> Val | None:
    """stdout of echo/printf/rev/base64 -d/xxd -r when every input is known."""
    args = argv[1:]
    taints = join(args).taints | (stdin.taints if stdin else frozenset())
    lines = join(args).lines | (stdin.lines if stdin else frozenset())
    known = not any(a.dynamic for a in args) and not ("dynamic" in taints
                                                      and stdin is not None
                                                      and stdin.dynamic)
    if name == "echo":
        words = [a.text for a in args]
        esc = False
        while words and re.fullmatch(r"-[neE]{1,3}", words[0]):
            esc = esc or "e" in words[0]
            words.pop(0)
        text = " ".join(words) + "\n"
        if esc:
            text = decode_escapes(text, octal_needs_zero=True)
        extra = {"decoded"} if esc and text != " ".join(words) + "\n" else set()
        return Val(text, taints | extra, lines) if known else None
    if name == "printf":
        words = [a.text for a in args]
        if words[:1] == ["-v"]:
            return Val("")
        text = printf_output(words)
        decoded = "\\" in "".join(words) or "%b" in "".join(words[:1])
        return Val(text, taints | ({"decoded"} if decoded else set()), lines) \
            if known else None
    if stdin is None or (stdin.dynamic and "decoded" not in stdin.taints):
        return None
    if stdin.dynamic and not stdin.text.strip("⟨⟩ \n"):
        return None
    data = stdin.text
    texts = [a.text for a in args]
    if name == "rev":
        return Val("\n".join(x[::-1] for x in data.split("\n")),
                   taints | {"decoded"}, lines)
    if name in ("base64", "basenc") and any(t in ("-d", "--decode", "-D") for t in texts):
        try:
            raw = base64.b64decode("".join(data.split()) + "==", validate=False)
            return Val(raw.decode("utf-8", "replace"), taints | {"decoded"}, lines)
        except (binascii.Error, ValueError):
            return None
    if name == "xxd" and any("r" in t for t in texts if t.startswith("-")):
        try:
            raw = bytes.fromhex("".join(re.findall(r"[0-9a-fA-F]{2}", data)))
            return Val(raw.decode("utf-8", "replace"), taints | {"decoded"}, lines)
        except ValueError:
            return None
    if name == "tr" and len(texts) == 2:
        table = str.maketrans(_tr_set(texts[0])[:len(_tr_set(texts[1]))],
                              _tr_set(texts[1])[:len(_tr_set(texts[0]))])
        return Val(data.translate(table), taints | {"decoded"}, lines)
    return None
