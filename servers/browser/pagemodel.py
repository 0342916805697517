"""What a model reads of a page: the accessibility snapshot with refs, interactive elements, text.

The snapshot is Playwright's own AI-mode ARIA snapshot (`locator.aria_snapshot(mode="ai")`, the
same tree Playwright MCP shows models): a compact YAML-like outline of roles and names in which
every element a model can act on carries `[ref=eN]`. Refs are resolved with Playwright's
`aria-ref=eN` selector engine and stay stable for an element across snapshots of the same
document; a navigation invalidates them. We remember which refs the latest snapshot of each tab
contained, so a stale or invented ref gets a clear error instead of a 10-second wait.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from servers.kit import ToolError

if TYPE_CHECKING:
    from playwright.async_api import Locator

    from servers.browser.session import Session, Tab

REF_PATTERN = re.compile(r"^(?:f\d+)?e\d+$")
_REF_IN_SNAPSHOT = re.compile(r"\[ref=([a-z0-9]+)\]")
_BLANK_RUNS = re.compile(r"\n[ \t]*(?:\n[ \t]*){2,}")


def clip(text: str, offset: int, max_chars: int) -> tuple[str, dict[str, Any]]:
    """A window of `text` with an explicit marker when more follows (models must not miss a cut)."""
    total = len(text)
    offset = min(max(offset, 0), total)
    end = min(total, offset + max_chars)
    window = text[offset:end]
    info: dict[str, Any] = {"total_chars": total, "offset": offset, "truncated": end < total}
    if end < total:
        window += f"\n[... truncated at {end} of {total} characters; call again with offset={end} for more]"
        info["next_offset"] = end
    return window, info


def tidy_text(text: str) -> str:
    lines = [line.rstrip() for line in text.replace("\r\n", "\n").replace("\xa0", " ").split("\n")]
    return _BLANK_RUNS.sub("\n\n", "\n".join(lines)).strip()


async def take_snapshot(tab: Tab, root: Locator, *, boxes: bool = False, timeout_ms: float) -> str:
    text = await root.aria_snapshot(mode="ai", boxes=boxes, timeout=timeout_ms)
    refs = set(_REF_IN_SNAPSHOT.findall(text))
    if tab.refs is None:
        tab.refs = refs
    else:
        tab.refs |= refs
    return text


def target_locator(session: Session, args: dict[str, Any], *, required: bool = True) -> tuple[Locator | None, str]:
    """The element an action names by `ref` (from snapshot) or `selector` (CSS, XPath, Playwright)."""
    ref, selector = args.get("ref"), args.get("selector")
    if ref is not None and selector is not None:
        raise ToolError("give either 'ref' or 'selector', not both", field="selector")
    tab = session.tab
    if ref is not None:
        if not REF_PATTERN.match(ref):
            raise ToolError(f"ref {ref!r} is not a snapshot ref (they look like e12)", field="ref")
        if tab.refs is None:
            raise ToolError(
                "no snapshot of this tab since it last loaded a page: call snapshot, then use a ref from it",
                field="ref",
            )
        if ref not in tab.refs:
            raise ToolError(
                f"ref {ref!r} is not in the latest snapshot of this tab; call snapshot again and use a ref from it",
                field="ref",
            )
        return tab.page.locator(f"aria-ref={ref}"), "ref"
    if selector is not None:
        if not selector.strip():
            raise ToolError("selector is empty", field="selector")
        return tab.page.locator(selector), "selector"
    if required:
        raise ToolError("name the element: give 'ref' (from snapshot) or 'selector' (CSS or XPath)", field="ref")
    return None, "selector"


# Visible elements a user can click or type into, each with a selector that finds exactly it.
INTERACTIVE_ELEMENTS_JS = r"""
(limit) => {
  const query = [
    'a[href]', 'button', 'input:not([type=hidden])', 'select', 'textarea', 'summary', '[contenteditable=""]',
    '[contenteditable=true]', '[onclick]', '[tabindex]:not([tabindex="-1"])',
    '[role=button]', '[role=link]', '[role=checkbox]', '[role=radio]', '[role=tab]', '[role=menuitem]',
    '[role=option]', '[role=switch]', '[role=textbox]', '[role=combobox]', '[role=searchbox]', '[role=slider]'
  ].join(',');
  const esc = (s) => (window.CSS && CSS.escape) ? CSS.escape(s) : s.replace(/[^a-zA-Z0-9_-]/g, '\\$&');
  const unique = (sel) => { try { return document.querySelectorAll(sel).length === 1; } catch (e) { return false; } };
  const selectorOf = (el) => {
    if (el.id && unique('#' + esc(el.id))) return '#' + esc(el.id);
    const tag = el.tagName.toLowerCase();
    for (const attr of ['name', 'data-testid', 'aria-label', 'placeholder']) {
      const v = el.getAttribute(attr);
      if (v) { const s = `${tag}[${attr}="${v.replace(/["\\]/g, '\\$&')}"]`; if (unique(s)) return s; }
    }
    const parts = [];
    let node = el;
    while (node && node.nodeType === 1 && node !== document.documentElement) {
      if (node.id && unique('#' + esc(node.id))) { parts.unshift('#' + esc(node.id)); break; }
      const t = node.tagName.toLowerCase();
      let i = 1, sib = node;
      while ((sib = sib.previousElementSibling)) if (sib.tagName === node.tagName) i++;
      parts.unshift(`${t}:nth-of-type(${i})`);
      node = node.parentElement;
    }
    return parts.join(' > ');
  };
  const visible = (el) => {
    const r = el.getBoundingClientRect();
    if (r.width <= 0 || r.height <= 0) return false;
    const st = getComputedStyle(el);
    return st.visibility !== 'hidden' && st.display !== 'none' && Number(st.opacity) !== 0;
  };
  const textOf = (el) => {
    const label = el.getAttribute('aria-label') || (el.labels && el.labels[0] && el.labels[0].innerText) || '';
    const own = (el.innerText || el.value || el.getAttribute('placeholder') || el.getAttribute('title') ||
                 el.getAttribute('alt') || '');
    return (label || own).replace(/\s+/g, ' ').trim().slice(0, 120);
  };
  const out = [];
  let total = 0;
  for (const el of document.querySelectorAll(query)) {
    if (!visible(el)) continue;
    total++;
    if (out.length >= limit) continue;
    const r = el.getBoundingClientRect();
    const item = {
      tag: el.tagName.toLowerCase(),
      role: el.getAttribute('role') || null,
      type: el.getAttribute('type') || null,
      name: el.getAttribute('name') || null,
      text: textOf(el),
      selector: selectorOf(el),
      box: {x: Math.round(r.x), y: Math.round(r.y), width: Math.round(r.width), height: Math.round(r.height)},
      disabled: !!el.disabled,
    };
    if (el.href) item.href = String(el.href).slice(0, 500);
    if ('value' in el && el.tagName !== 'BUTTON' && typeof el.value === 'string') item.value = el.value.slice(0, 200);
    out.push(item);
  }
  return {elements: out, total};
}
"""

PAGE_TEXT_JS = (
    "() => (document.body || document.documentElement) ? (document.body || document.documentElement).innerText : ''"
)

SCROLL_STATE_JS = """() => {
  const el = document.scrollingElement || document.documentElement;
  return {x: Math.round(window.scrollX), y: Math.round(window.scrollY),
          width: el.scrollWidth, height: el.scrollHeight,
          viewport_width: window.innerWidth, viewport_height: window.innerHeight};
}"""
