"""From a file's bytes to clean text, and from text to overlapping chunks. Pure functions: no
database, no embedder. Every refusal is a DocumentInvalid that says what is wrong."""

from __future__ import annotations

import hashlib
import io
import re
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import PurePath

from django.conf import settings

from knowledge.exceptions import DocumentInvalid, DocumentTooLarge, UnsupportedDocumentType

TYPES_BY_SUFFIX = {
    ".txt": "text",
    ".text": "text",
    ".md": "markdown",
    ".markdown": "markdown",
    ".html": "html",
    ".htm": "html",
    ".pdf": "pdf",
}
TYPES_BY_MIME = {
    "text/plain": "text",
    "text/markdown": "markdown",
    "text/html": "html",
    "application/pdf": "pdf",
}
CONTENT_TYPES = ("text", "markdown", "html", "pdf")


@dataclass(frozen=True)
class Extracted:
    title: str
    text: str
    content_type: str
    content_hash: str


def content_type_of(*, filename: str, mime: str = "") -> str:
    """``text``, ``markdown``, ``html`` or ``pdf`` from the file name (or the MIME type)."""
    suffix = PurePath(filename).suffix.lower()
    found = TYPES_BY_SUFFIX.get(suffix) or TYPES_BY_MIME.get(mime.split(";")[0].strip().lower())
    if found is None:
        raise UnsupportedDocumentType(
            f"{filename or 'the file'}: unsupported type; send .txt, .md, .html or .pdf",
            filename=filename,
            supported=sorted(TYPES_BY_SUFFIX),
        )
    return found


def _decoded(data: bytes, filename: str) -> str:
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise DocumentInvalid(f"{filename}: not UTF-8 text (binary data?)", filename=filename) from None
    # Text files do not hold control characters other than whitespace; binary data does.
    controls = sum(1 for ch in text if ord(ch) < 32 and ch not in "\t\n\r\f")
    if controls > max(8, len(text) // 100) or "\x00" in text:
        raise DocumentInvalid(f"{filename}: holds binary data, not text", filename=filename)
    return text


class _HtmlText(HTMLParser):
    _SKIP = {"script", "style", "head", "noscript", "template"}
    _BLOCK = {"p", "div", "br", "li", "ul", "ol", "h1", "h2", "h3", "h4", "h5", "h6", "tr", "section", "article"}

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.title = ""
        self._skipping = 0
        self._in_title = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "title":
            self._in_title = True
        if tag in self._SKIP:
            self._skipping += 1
        elif tag in self._BLOCK:
            self.parts.append("\n\n" if tag in {"p", "div", "section", "article"} or tag[0] == "h" else "\n")

    def handle_endtag(self, tag: str) -> None:
        if tag == "title":
            self._in_title = False
        if tag in self._SKIP and self._skipping:
            self._skipping -= 1
        elif tag in self._BLOCK:
            self.parts.append("\n\n" if tag[0] == "h" or tag == "p" else "\n")

    def handle_data(self, data: str) -> None:
        if self._in_title:
            self.title += data
        elif not self._skipping:
            self.parts.append(data)


def _pdf_text(data: bytes, filename: str) -> str:
    from pypdf import PdfReader
    from pypdf.errors import PyPdfError

    try:
        reader = PdfReader(io.BytesIO(data))
        pages = [page.extract_text() or "" for page in reader.pages]
    except (PyPdfError, ValueError, KeyError, TypeError, OSError) as exc:
        raise DocumentInvalid(f"{filename}: not a readable PDF ({type(exc).__name__})", filename=filename) from None
    return "\n\n".join(pages)


def _normalized(text: str) -> str:
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    text = re.sub(r"[ \t\f\v]+", " ", text)
    text = re.sub(r" *\n *", "\n", text)
    return re.sub(r"\n{3,}", "\n\n", text).strip()


def _markdown_title(text: str) -> str:
    for line in text.splitlines():
        if line.startswith("# "):
            return line[2:].strip()
    return ""


def document_extract(*, data: bytes, filename: str, mime: str = "", title: str = "") -> Extracted:
    """The text of a file, its title (given, else found in the file, else the file name) and
    the sha256 of the text. Raises DocumentInvalid (empty, binary, unreadable),
    DocumentTooLarge and UnsupportedDocumentType."""
    content_type = content_type_of(filename=filename, mime=mime)
    limit = settings.KNOWLEDGE_MAX_DOCUMENT_BYTES
    if len(data) > limit:
        raise DocumentTooLarge(f"{filename}: {len(data)} bytes, more than the {limit} allowed", limit=limit)
    if not data.strip():
        raise DocumentInvalid(f"{filename}: the file is empty", filename=filename)
    found_title = ""
    if content_type == "pdf":
        if not data.startswith(b"%PDF-"):
            raise DocumentInvalid(f"{filename}: not a PDF file", filename=filename)
        text = _pdf_text(data, filename)
    elif content_type == "html":
        parser = _HtmlText()
        parser.feed(_decoded(data, filename))
        parser.close()
        text, found_title = "".join(parser.parts), parser.title.strip()
    else:
        text = _decoded(data, filename)
        if content_type == "markdown":
            found_title = _markdown_title(text)
    text = _normalized(text)
    if not text:
        raise DocumentInvalid(f"{filename}: no text found in the file", filename=filename)
    return Extracted(
        title=(title or found_title or PurePath(filename).stem or "untitled")[:300],
        text=text,
        content_type=content_type,
        content_hash=hashlib.sha256(text.encode()).hexdigest(),
    )


def text_chunks(text: str, *, size: int | None = None, overlap: int | None = None) -> list[str]:
    """``text`` cut into chunks of at most ``size`` characters, each starting ``overlap``
    characters before the previous one ended. Cuts fall on a paragraph, sentence or word
    boundary when one is near, so a chunk rarely ends mid-word."""
    size = size or settings.KNOWLEDGE_CHUNK_CHARS
    overlap = settings.KNOWLEDGE_CHUNK_OVERLAP if overlap is None else overlap
    if not 0 <= overlap < size // 2:
        raise ValueError("overlap must be at least 0 and less than half the chunk size")
    chunks: list[str] = []
    start = 0
    while start < len(text):
        end = min(start + size, len(text))
        if end < len(text):
            window = text[start:end]
            floor = size // 2
            for separator in ("\n\n", "\n", ". ", "? ", "! ", " "):
                cut = window.rfind(separator, floor)
                if cut != -1:
                    end = start + cut + len(separator)
                    break
        piece = text[start:end].strip()
        if piece:
            chunks.append(piece)
        if end >= len(text):
            break
        next_start = end - overlap
        # Start the overlap on a word.
        space = text.find(" ", next_start, end)
        start = space + 1 if overlap and space != -1 else next_start
    return chunks
