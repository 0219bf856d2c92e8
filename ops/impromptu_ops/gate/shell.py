"""Private: Shell read as shell: a tree-sitter parse, words normalised, commands judged (pure).

The file is parsed with ``tree-sitter-bash`` (MIT). Each word is evaluated the way the
shell would build it, as far as that is knowable without running anything:

- quoting and escapes are removed (``c''url``, ``\\curl``, ``"cu"rl``), ``$'\\x63'`` and
  ``$'\\143'`` are decoded, ``${IFS}`` is a space and unquoted expansions split into words;
- variables assigned in the file are followed (``X=curl; $X ...``, ``K=$IMPROMPTU_API_KEY``),
  with ``${V:-default}``, ``${V}`` and short slices (``${K:0:8}``, a masked display);
- ``$(printf '\\x63\\x75...')``, ``$(echo ...)``, ``$(echo BLOB | base64 -d)`` and ``rev`` of a
  literal are computed; any other command substitution is a placeholder carrying the
  taints of what ran inside it (fetched, decoded, a key...).

Commands then go to :class:`~.capabilities.CommandJudge` in the order they appear; text that
is run as code (``sh -c``, ``eval``, a here-document or a literal piped into a shell) is
analysed again, to a bounded depth. A file that does not parse is a finding: the gate
fails closed rather than guessing.
"""

from __future__ import annotations

import base64
import binascii
import functools
import re
from typing import Final

import tree_sitter_bash
from tree_sitter import Language, Node, Parser

from impromptu_ops.gate.capabilities import CommandJudge, Event, Val, basename, join

MAX_DEPTH: Final = 4
_MAX_CALLS: Final = 200  # function calls read per file; later calls are judged as commands
_IFS_NAMES: Final = frozenset({"IFS"})
_SIMPLE_ESC: Final = {"n": "\n", "t": "\t", "r": "\r", "a": "\a", "b": "\b", "e": "\x1b",
                      "E": "\x1b", "f": "\f", "v": "\v", "\\": "\\", "'": "'", '"': '"',
                      "?": "?"}


@functools.cache
def _parser() -> Parser:
    return Parser(Language(tree_sitter_bash.language()))


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


class ShellAnalyser:
    """Walks one shell text; every command goes to ``judge`` in order."""

    def __init__(self, judge: CommandJudge, base_line: int = 0, depth: int = 0) -> None:
        self.judge = judge
        self.base = base_line
        self.depth = depth
        self.vars: dict[str, Val] = {}
        self.functions: dict[str, Node] = {}
        self.calls = 0  # function bodies read again at a call (bounded)
        self.call_depth = 0
        self.call_bytes = 0  # bytes of bodies re-read: at most four times the file
        self.src = b""

    # --- entry ---------------------------------------------------------------------------

    def analyse(self, text: str) -> None:
        self.src = text.encode("utf-8", "surrogateescape")
        tree = _parser().parse(ascii_shape(self.src))
        root = tree.root_node
        if root.has_error:
            bad = self._first_error(root)
            line = self._line(bad) if bad is not None else self.base
            self.judge.event("unparseable", line, "shell that does not parse as shell: the "
                             "gate cannot tell what it runs (fail closed)")
        for m in re.finditer(r"/dev/(tcp|udp)/[^\s\"'<>;|&)]{1,260}", text):
            line = self.base + (0 if self.depth else text.count("\n", 0, m.start()))
            self.judge.devtcp(Val(m.group(0)), line)
        self.block(root)

    def _first_error(self, node: Node) -> Node | None:
        stack = [node]
        while stack:
            n = stack.pop()
            if n.type == "ERROR" or n.is_missing:
                return n
            stack.extend(reversed(n.children))
        return None

    def _line(self, node: Node) -> int:
        if self.depth:
            return self.base
        text = self._text(node)
        lead = text[:len(text) - len(text.lstrip())]  # a node may start with the newline
        return self.base + node.start_point[0] + lead.count("\n")

    def _text(self, node: Node) -> str:
        return self.src[node.start_byte:node.end_byte].decode("utf-8", "surrogateescape")

    # --- statements ----------------------------------------------------------------------

    def block(self, node: Node) -> None:
        for child in node.named_children:
            self.stmt(child, None)

    def stmt(self, node: Node, stdin: Val | None) -> Val:
        """Run one statement; its stdout (as far as known)."""
        t = node.type
        if t == "command":
            return self.command(node, stdin, [])
        if t == "pipeline":
            out = stdin
            for child in node.named_children:
                out = self.stmt(child, out)
            return out or Val("")
        if t == "redirected_statement":
            return self.redirected(node, stdin)
        if t == "variable_assignment":
            self.assign(node)
            return Val("")
        if t == "variable_assignments":
            for c in node.named_children:
                self.assign(c)
            return Val("")
        if t == "declaration_command":
            return self.declaration(node)
        if t in ("comment", "heredoc_body", "heredoc_start", "heredoc_end"):
            return Val("")
        if t == "function_definition":
            body = node.child_by_field_name("body")
            fname = node.child_by_field_name("name")
            if body is not None:
                if fname is not None:
                    self.functions[self._text(fname)] = body
                    me = re.escape(self._text(fname))
                    if re.search(rf"(^|[\s;{{(]){me}\s{{0,20}}(\|\s{{0,20}}{me}(?![\w-])|&)",
                                 self._text(body)):
                        self.judge.event("destructive", self._line(node), "a function that "
                                         "starts copies of itself: a fork bomb")
                self.stmt(body, None)
            return Val("")
        if t == "negated_command":
            return self.stmt(node.named_children[-1], stdin) if node.named_children else Val("")
        if t in ("test_command", "unset_command"):
            for c in node.named_children:
                self.word(c)
            return Val("")
        outs: list[Val] = []
        for child in node.named_children:
            if child.type in ("command", "pipeline", "redirected_statement", "list",
                              "subshell", "compound_statement", "if_statement",
                              "while_statement", "for_statement", "c_style_for_statement",
                              "case_statement", "case_item", "elif_clause", "else_clause",
                              "do_group", "function_definition", "variable_assignment",
                              "declaration_command", "negated_command", "test_command",
                              "unset_command", "variable_assignments", "ERROR"):
                outs.append(self.stmt(child, stdin))
            elif child.type in ("command_substitution", "process_substitution", "string",
                                "expansion", "simple_expansion", "concatenation"):
                outs.append(self.word(child))
        return join(outs) if outs else Val("")

    def redirected(self, node: Node, stdin: Val | None) -> Val:
        body = node.child_by_field_name("body")
        writes: list[tuple[str, Val]] = []
        heredoc: Val | None = None
        after: list[Node] = []
        for r in node.children_by_field_name("redirect"):
            if r.type == "heredoc_redirect":
                text = "".join(self._text(c) for c in r.named_children
                               if c.type == "heredoc_body")
                quoted = any(c.type == "heredoc_start" and self._text(c)[:1] in "'\"\\"
                             for c in r.named_children)
                heredoc = Val(text) if quoted else self._expand_heredoc(text)
                body_rows = frozenset(
                    self.base + row for c in r.named_children if c.type == "heredoc_body"
                    for row in range(c.start_point[0], c.end_point[0] + 1)) \
                    if not self.depth else frozenset({self.base})
                heredoc = Val(heredoc.text, heredoc.taints, heredoc.lines | body_rows,
                              heredoc.split, heredoc.operator)
                after += [c for c in r.named_children if c.type in (
                    "pipeline", "command", "list")]
                for c in r.named_children:  # "cat <<EOF > file": the write sits in here
                    if c.type == "file_redirect":
                        dest = c.child_by_field_name("destination") or (
                            c.named_children[-1] if c.named_children else None)
                        op = "".join(self._text(x) for x in c.children if not x.is_named)
                        if dest is not None and dest.type != "file_descriptor":
                            writes.append(((op or ">").strip(), self.word(dest)))
            elif r.type == "herestring_redirect":
                vals = [self.word(c) for c in r.named_children]
                heredoc = join(vals, " ")
            elif r.type == "file_redirect":
                op = "".join(self._text(c) for c in r.children if not c.is_named) or ">"
                dest = r.child_by_field_name("destination")
                if dest is None and r.named_children:
                    dest = r.named_children[-1]
                if dest is not None and dest.type != "file_descriptor":
                    writes.append((op.strip(), self.word(dest)))
        if body is None:  # "> ~/.bashrc" alone truncates: still a write
            for op, target in writes:
                self.judge.write_to("redirect", target, self._line(node), op, heredoc)
            return Val("")
        if body.type == "command":
            out = self.command(body, heredoc if heredoc is not None else stdin, writes)
        else:
            out = self.stmt(body, heredoc if heredoc is not None else stdin)
            for op, target in writes:
                self.judge.write_to("redirect", target, self._line(node), op, out)
        for a in after:
            if a.type == "pipeline":
                for c in a.named_children:
                    out = self.stmt(c, out)
            elif a.type == "command":
                out = self.stmt(a, out)
        return out

    def _expand_heredoc(self, text: str) -> Val:
        parts: list[Val] = []
        pos = 0
        for m in re.finditer(r"\$\{?([A-Za-z_][A-Za-z0-9_]{0,63})\}?", text):
            parts.append(Val(text[pos:m.start()]))
            parts.append(self.var(m.group(1)))
            pos = m.end()
        parts.append(Val(text[pos:]))
        if "$(" in text or "`" in text:
            parts.append(Val("", frozenset({"dynamic"})))
        return join(parts)

    def assign(self, node: Node) -> None:
        name_node = node.child_by_field_name("name")
        value = node.child_by_field_name("value")
        if name_node is None:
            return
        name = self._text(name_node)
        val = self.word(value) if value is not None else Val("")
        line = self._line(node)
        if name in ("LD_PRELOAD", "LD_LIBRARY_PATH", "PROMPT_COMMAND", "BASH_ENV", "ENV"):
            self.judge.persist(f"{name}={val.text[:60]}", line, val)
        if "+=" in self._text(node)[:len(name) + 2] and name in self.vars:
            val = join([self.vars[name], val])
        # operator stays true only for text that is an environment variable the operator
        # sets (``API=${IMPROMPTU_API_URL:-...}``), never for anything computed here
        self.vars[name] = Val(val.text, val.taints, val.lines | {line}, False,
                              val.operator and not val.dynamic)

    def declaration(self, node: Node) -> Val:
        keyword = self._text(node.children[0]) if node.children else "export"
        flags: list[str] = []
        for c in node.named_children:
            if c.type == "variable_assignment":
                self.assign(c)
            elif c.type == "word":
                flags.append(self._text(c))
        has_assign = any(c.type in ("variable_assignment", "variable_name")
                         for c in node.named_children)
        if not has_assign:
            self.judge.run([Val(keyword), *[Val(f) for f in flags]], self._line(node), None, [],
                           self.depth)
        return Val("")

    # --- commands ------------------------------------------------------------------------

    def command(self, node: Node, stdin: Val | None, writes: list[tuple[str, Val]]) -> Val:
        argv: list[Val] = []
        prefix: list[Node] = []
        for c in node.named_children:
            if c.type == "variable_assignment":
                prefix.append(c)
                continue
            if c.type in ("file_redirect", "herestring_redirect"):
                continue
            field = c.type
            val = self.word(c.named_children[0] if field == "command_name" and
                            c.named_children else c)
            ifs = self.vars["IFS"].text if "IFS" in self.vars else ""
            seps = "[\\s" + re.escape(ifs) + "]" if ifs else r"\s"
            if val.split and re.search(seps, val.text):
                argv += [Val(w, val.taints, val.lines, False, val.operator)
                         for w in re.split(seps + "+", val.text) if w]
            else:
                argv.append(val)
        for c in node.named_children:
            if c.type == "file_redirect":
                dest = c.child_by_field_name("destination") or (
                    c.named_children[-1] if c.named_children else None)
                op = "".join(self._text(x) for x in c.children if not x.is_named) or ">"
                if dest is not None and dest.type != "file_descriptor":
                    writes = [*writes, (op.strip(), self.word(dest))]
            elif c.type == "herestring_redirect":
                stdin = join([self.word(x) for x in c.named_children], " ")
        name_node = next((c for c in node.named_children if c.type == "command_name"), node)
        line = self._line(name_node)
        if not argv:
            for p in prefix:
                self.assign(p)
            return Val("")
        name_row = next((c.start_point[0] for c in node.named_children
                         if c.type == "command_name"), None)
        for p in [p for p in prefix if name_row is not None and p.end_point[0] < name_row]:
            # tree-sitter-bash reads "A=1<newline>\\cmd" as one command with a prefix;
            # bash ends the assignment at the newline: it is a plain assignment
            self.assign(p)
        prefix = [p for p in prefix if name_row is None or p.end_point[0] >= name_row]
        for p in prefix:  # VAR=value cmd: only the command sees it, but judge the value
            pv = p.child_by_field_name("value")
            pn = p.child_by_field_name("name")
            if pn is not None and self._text(pn) in ("LD_PRELOAD", "BASH_ENV"):
                self.judge.persist(self._text(p)[:80], line)
            if pv is not None:
                self.word(pv)
        name = basename(argv[0].text)
        body = self.functions.get(name)
        if body is not None and self.calls < _MAX_CALLS and self.call_depth < 8 and (
                self.call_bytes + body.end_byte - body.start_byte <= 4 * len(self.src) + 4096):
            self.call_bytes += body.end_byte - body.start_byte
            return self._call(name, argv[1:], stdin, writes, line)
        literal = self._literal_output(name, argv, stdin)
        out = self.judge.run(argv, line, stdin, writes, self.depth)
        content = literal if name in ("echo", "printf") else (
            stdin if name == "cat" and len(argv) == 1 else None)
        for op, target in writes:
            if op in (">", ">>", ">|", "&>", "&>>"):
                # a script this file writes: if it is run later, it is read then
                written = content if content is not None else Val(
                    f"⟨{name}⟩", frozenset({"dynamic"}) | out.taints, out.lines)
                self.judge.written[target.text] = Val(written.text, written.taints,
                                                      written.lines | {line})
        if name in ("echo", "printf") and writes:
            for op, target in writes:
                self.judge.write_to(name, target, line, op, join(argv[1:]))
        if literal is not None:
            return Val(literal.text, literal.taints, literal.lines | out.lines, False, False)
        if name in ("echo", "printf", "cat") and not literal:
            return Val(out.text, out.taints | join(argv[1:]).taints, out.lines)
        return out

    def _call(self, name: str, args: list[Val], stdin: Val | None,
              writes: list[tuple[str, Val]], line: int) -> Val:
        """A call of a function defined in this file: its body is read again with ``$1``,
        ``$@``... bound to the arguments, and what it does belongs to this line too."""
        self.calls += 1
        saved = dict(self.vars)
        for i, a in enumerate(args, start=1):
            self.vars[str(i)] = Val(a.text, a.taints, a.lines | {line})
        every = join(args, " ")
        self.vars["@"] = self.vars["*"] = Val(every.text, every.taints, every.lines | {line})
        first = len(self.judge.events)
        self.call_depth += 1
        try:
            out = self.stmt(self.functions[name], stdin)
        finally:
            self.call_depth -= 1
            self.vars = {**saved, **{k: v for k, v in self.vars.items()
                                     if k not in saved and not k.isdigit() and k not in "@*"}}
        self.judge.events[first:] = [
            Event(e.cls, e.line, e.lines | {line}, e.message)
            for e in self.judge.events[first:]]
        for op, target in writes:
            self.judge.write_to(name, target, line, op, out)
        return out

    def _literal_output(self, name: str, argv: list[Val], stdin: Val | None) -> Val | None:
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

    # --- words ---------------------------------------------------------------------------

    def var(self, name: str, quoted: bool = False) -> Val:
        if name in _IFS_NAMES:
            return Val(self.vars["IFS"].text[:1] if "IFS" in self.vars and
                       self.vars["IFS"].text else " ", split=not quoted)
        if name in self.vars:
            v = self.vars[name]
            return Val(v.text, v.taints, v.lines, split=not quoted, operator=v.operator)
        outer = self.judge.assigned.get(name)
        if outer is not None:
            return outer
        taints: frozenset[str] = frozenset()
        if self.judge.ctx.is_key(name):
            taints = frozenset({f"key:{name}"})
        return Val(f"${{{name}}}", taints, operator=True)

    def word(self, node: Node | None, quoted: bool = False) -> Val:
        if node is None:
            return Val("")
        t = node.type
        text = self._text(node)
        if t in ("word", "number", "special_variable_name", "extglob_pattern", "regex",
                 "test_operator", "file_descriptor"):
            return Val(re.sub(r"\\(.)", r"\1", text.replace("\\\n", "").strip(),
                              flags=re.DOTALL))
        if t == "raw_string":
            return Val(text[1:-1])
        if t == "ansi_c_string":
            return Val(decode_escapes(text[2:-1]), frozenset({"decoded"}) if "\\" in text
                       else frozenset())
        if t in ("string", "translated_string"):
            inner = node.named_children
            parts: list[Val] = []
            pos = node.start_byte + (2 if t == "translated_string" else 1)
            for c in inner:
                if c.start_byte > pos:
                    parts.append(Val(self.src[pos:c.start_byte].decode("utf-8", "replace")))
                if c.type == "string_content":
                    parts.append(Val(re.sub(r'\\([$`"\\\n])', r"\1", self._text(c))))
                else:
                    parts.append(self.word(c, quoted=True))
                pos = c.end_byte
            end = node.end_byte - 1
            if end > pos:
                parts.append(Val(self.src[pos:end].decode("utf-8", "replace")))
            v = join(parts)
            return Val(v.text, v.taints, v.lines, False, v.operator)
        if t == "concatenation":
            return join(self.word(c, quoted) for c in node.named_children) \
                if node.named_children else Val(text)
        if t == "simple_expansion":
            names = list(node.named_children)
            if names and names[0].type in ("variable_name", "special_variable_name"):
                return self.var(self._text(names[0]), quoted)
            return Val(text, frozenset({"dynamic"}))
        if t == "expansion":
            return self.expansion(node, quoted)
        if t in ("command_substitution", "process_substitution"):
            out = Val("")
            for c in node.named_children:
                out = self.stmt(c, None)
            if t == "process_substitution":
                return Val("/dev/fd/63", out.taints | {"dynamic"}, out.lines)
            if out.dynamic and not ({"decoded"} & out.taints and "⟨" not in out.text):
                return Val(f"⟨{text[:40]}⟩", out.taints | {"dynamic"}, out.lines,
                           split=not quoted)
            return Val(out.text.rstrip("\n"), out.taints, out.lines, split=not quoted)
        if t == "arithmetic_expansion":
            return Val("0", frozenset({"dynamic"}))
        if t == "brace_expression":
            return Val(text)
        return Val(text)

    def expansion(self, node: Node, quoted: bool) -> Val:
        kids = node.named_children
        name_node = next((c for c in kids if c.type in ("variable_name",
                                                         "special_variable_name")), None)
        if name_node is None:
            return Val(self._text(node), frozenset({"dynamic"}))
        name = self._text(name_node)
        ops = [self._text(c) for c in node.children if c.type in (":-", "-", ":=", "=", ":",
                                                                   ":?", "?", "#", "##", "%",
                                                                   "%%", "/", "//", ":+", "+")
               or c.grammar_name in (":-", ":", ":=")]
        base = self.var(name, quoted)
        body = self._text(node)
        if body.startswith("${#"):
            return Val("0", frozenset(), base.lines)
        rest = [c for c in kids if c is not name_node]
        if body.startswith("${!"):  # indirect: the variable named by this one's value
            return self.var(base.text, quoted) if re.fullmatch(r"\w{1,64}", base.text) else \
                Val(body, frozenset({"dynamic"}) | base.taints, base.lines)
        if ops and ops[0] in (":-", "-", ":=", "="):
            if base.text.startswith("${") and base.operator:
                # Unset in this file: judge what runs when the operator has not set it
                # either (the default); an empty default leaves the operator's value.
                default = join(self.word(c, True) for c in rest) if rest else Val("")
                if default.text:
                    return Val(default.text, default.taints | base.taints,
                               default.lines | base.lines, split=not quoted,
                               operator=default.operator)
                return Val(base.text, base.taints, base.lines, operator=True)
            return base
        if ops and ops[0] == ":" and base.keys:
            nums = re.findall(r"-?\d{1,6}", body[len(name) + 3:])
            if (len(nums) == 2 and abs(int(nums[1])) <= 8) or (len(nums) == 1 and \
                    int(nums[0]) < 0 and abs(int(nums[0])) <= 8):
                return Val("****", frozenset(f"keypart:{k}" for k in base.keys), base.lines)
        if ops:
            return Val(base.text, base.taints | {"dynamic"} if not base.operator else
                       base.taints, base.lines, operator=base.operator)
        return base


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


def analyse(text: str, judge: CommandJudge, base_line: int = 0, depth: int = 0) -> None:
    """Judge every command of a shell ``text`` (nested code to :data:`MAX_DEPTH` levels)."""
    if depth > MAX_DEPTH:
        judge.event("fetch-exec", base_line, "code nested in code deeper than the gate reads "
                    f"({MAX_DEPTH} levels): refusing to guess what runs")
        return
    try:
        ShellAnalyser(judge, base_line, depth).analyse(text)
    except RecursionError:
        judge.event("unparseable", base_line, "shell nested too deep to read (fail closed)")

