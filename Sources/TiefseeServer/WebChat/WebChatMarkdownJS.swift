extension WebChatAssets {
    /// A small Markdown renderer for answers. Safety rule: every character of the input is
    /// HTML-escaped before any markup is added, and the only markup added is a fixed set of
    /// tags (links only to http(s), mailto and same-site addresses), so nothing a model or a
    /// document writes can become a tag, an attribute or a script.
    static let markdownJS = #"""
"use strict";
(function () {
  const ESCAPES = { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" };
  function escapeHTML(s) { return String(s).replace(/[&<>"']/g, (c) => ESCAPES[c]); }

  // ---- Inline markup -------------------------------------------------------------------
  // Code spans are cut out first (their text stays literal). In the rest, links and citations
  // become placeholders before emphasis is applied, so emphasis never reaches into a URL.

  function inline(text, opts) {
    let out = "", last = 0, m;
    const code = /(`+)([^`]|[^`][\s\S]*?[^`])\1(?!`)/g;
    while ((m = code.exec(text))) {
      out += spans(text.slice(last, m.index), opts);
      out += "<code>" + escapeHTML(m[2].trim()) + "</code>";
      last = code.lastIndex;
    }
    return out + spans(text.slice(last), opts);
  }

  function safeURL(url) {
    return /^(https?:\/\/|mailto:|\/(?!\/)|#)/i.test(url);
  }

  function spans(raw, opts) {
    const held = [];
    const hold = (html) => "\u0000" + (held.push(html) - 1) + "\u0000";
    let s = escapeHTML(raw.replace(/\u0000/g, ""));
    s = s.replace(/\[([^\]\n]+)\]\(([^)\s]+)\)/g, (all, label, url) => {
      const plain = url.replace(/&amp;/g, "&");
      if (!safeURL(plain)) return all;
      return hold('<a href="' + url + '" target="_blank" rel="noopener noreferrer">') + label + hold("</a>");
    });
    const count = (opts && opts.citations) || 0;
    if (count > 0) {
      // [1], [1, 3], [citation:2] (R1's form)
      s = s.replace(/\[(?:citation:)?\s*(\d{1,3}(?:\s*[,;]\s*\d{1,3})*)\s*\]/g, (all, list) => {
        const nums = list.split(/[,;]/).map((x) => parseInt(x, 10));
        if (nums.some((n) => !(n >= 1 && n <= count))) return all;
        return nums.map((n) => hold('<button type="button" class="cite" data-n="' + n + '" title="Source ' + n + '">' + n + "</button>")).join("");
      });
    }
    s = s.replace(/(\*\*|__)(?=\S)([\s\S]*?\S)\1/g, "<strong>$2</strong>");
    s = s.replace(/(^|[^*\w])\*(?=[^\s*])([^*\n]*?[^\s*])\*(?![*\w])/g, "$1<em>$2</em>");
    s = s.replace(/(^|[^_\w])_(?=[^\s_])([^_\n]*?[^\s_])_(?![_\w])/g, "$1<em>$2</em>");
    s = s.replace(/~~(?=\S)([\s\S]*?\S)~~/g, "<del>$1</del>");
    s = s.replace(/\n/g, "<br>");
    return s.replace(/\u0000(\d+)\u0000/g, (all, i) => held[Number(i)]);
  }

  // ---- Blocks ----------------------------------------------------------------------------

  const FENCE = /^ {0,3}(`{3,}|~{3,})\s*([\w+#.-]*)[^`]*$/;
  const HEADING = /^ {0,3}(#{1,6})\s+(.*?)\s*#*\s*$/;
  const RULE = /^ {0,3}([-*_])(?:\s*\1){2,}\s*$/;
  const QUOTE = /^ {0,3}> ?(.*)$/;
  const ITEM = /^(\s*)([-*+]|\d{1,9}[.)])\s+(.*)$/;
  const TABLE_RULE = /^\s*\|?\s*:?-{2,}:?\s*(\|\s*:?-{2,}:?\s*)*\|?\s*$/;

  function startsBlock(line) {
    return FENCE.test(line) || HEADING.test(line) || RULE.test(line) || QUOTE.test(line) || ITEM.test(line);
  }

  function render(src, opts) {
    const lines = String(src).replace(/\r\n?/g, "\n").split("\n");
    let html = "", i = 0;
    while (i < lines.length) {
      const line = lines[i];
      let m;
      if (/^\s*$/.test(line)) { i++; continue; }
      if ((m = FENCE.exec(line))) {
        // A fence still open at the end (an answer being streamed) runs to the end.
        const fence = m[1], lang = m[2], body = [];
        i++;
        while (i < lines.length && !(lines[i].trim().startsWith(fence) && lines[i].trim().replace(/[`~]/g, "") === "")) body.push(lines[i++]);
        i++;
        html += "<pre>" + (lang ? '<span class="lang">' + escapeHTML(lang) + "</span>" : "") +
          "<code" + (lang ? ' class="language-' + escapeHTML(lang) + '"' : "") + ">" + escapeHTML(body.join("\n")) + "</code></pre>";
        continue;
      }
      if ((m = HEADING.exec(line))) {
        const n = m[1].length;
        html += "<h" + n + ">" + inline(m[2], opts) + "</h" + n + ">";
        i++; continue;
      }
      if (RULE.test(line)) { html += "<hr>"; i++; continue; }
      if (QUOTE.test(line)) {
        const body = [];
        while (i < lines.length && (m = QUOTE.exec(lines[i]))) { body.push(m[1]); i++; }
        html += "<blockquote>" + render(body.join("\n"), opts) + "</blockquote>";
        continue;
      }
      if (ITEM.test(line)) { const r = list(lines, i, opts); html += r.html; i = r.next; continue; }
      if (line.includes("|") && i + 1 < lines.length && TABLE_RULE.test(lines[i + 1])) {
        const r = table(lines, i, opts); html += r.html; i = r.next; continue;
      }
      const para = [];
      while (i < lines.length && !/^\s*$/.test(lines[i]) && !(para.length && startsBlock(lines[i]))) para.push(lines[i++]);
      html += "<p>" + inline(para.join("\n"), opts) + "</p>";
    }
    return html;
  }

  // A list: items at the first item's indentation; deeper lines belong to the item before
  // them and are rendered as blocks of their own (nested lists, code).
  function list(lines, start, opts) {
    const first = ITEM.exec(lines[start]);
    const indent = first[1].length, ordered = /\d/.test(first[2]);
    const items = [];
    let i = start, blankBefore = false, loose = false;
    while (i < lines.length) {
      const line = lines[i], m = ITEM.exec(line);
      if (/^\s*$/.test(line)) { blankBefore = true; i++; continue; }
      const lineIndent = line.match(/^\s*/)[0].length;
      if (m && m[1].length === indent && /\d/.test(m[2]) === ordered) {
        if (blankBefore && items.length) loose = true;
        items.push([m[3]]);
      } else if (lineIndent > indent && items.length) {
        items[items.length - 1].push(line.slice(Math.min(lineIndent, indent + 2)));
      } else if (!blankBefore && !startsBlock(line) && items.length) {
        items[items.length - 1].push(line);  // a lazy continuation line
      } else break;
      blankBefore = false;
      i++;
    }
    const tag = ordered ? "ol" : "ul";
    const startNum = ordered ? parseInt(first[2], 10) : 1;
    let html = "<" + tag + (ordered && startNum !== 1 ? ' start="' + startNum + '"' : "") + ">";
    for (const item of items) {
      let inner = render(item.join("\n"), opts);
      if (!loose) inner = inner.replace(/^<p>([\s\S]*?)<\/p>/, "$1");
      html += "<li>" + inner + "</li>";
    }
    return { html: html + "</" + tag + ">", next: i };
  }

  function cells(line) {
    let s = line.trim();
    if (s.startsWith("|")) s = s.slice(1);
    if (s.endsWith("|")) s = s.slice(0, -1);
    return s.split("|").map((c) => c.trim());
  }

  function table(lines, start, opts) {
    const head = cells(lines[start]);
    const align = cells(lines[start + 1]).map((c) => c.startsWith(":") && c.endsWith(":") ? "center" : c.endsWith(":") ? "right" : "");
    const td = (tag, text, k) => "<" + tag + (align[k] ? ' class="align-' + align[k] + '"' : "") + ">" + inline(text, opts) + "</" + tag + ">";
    let html = "<table><thead><tr>" + head.map((c, k) => td("th", c, k)).join("") + "</tr></thead><tbody>";
    let i = start + 2;
    while (i < lines.length && lines[i].includes("|") && !/^\s*$/.test(lines[i])) {
      html += "<tr>" + cells(lines[i]).map((c, k) => td("td", c, k)).join("") + "</tr>";
      i++;
    }
    return { html: html + "</tbody></table>", next: i };
  }

  const api = { render, inline, escapeHTML };
  if (typeof window !== "undefined") window.TiefseeMarkdown = api;
  if (typeof module !== "undefined") module.exports = api;
})();
"""#
}
