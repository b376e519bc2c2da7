"""The trace page on a projector: 1024 × 768 and 800 × 600, read from the element boxes.

At every stage, in headless Chromium at each window size: the drawing does not overlap the
panel or the Next button; every neuron and value label lies inside the drawing; no value
label covers a neuron; the layers' captions do not overlap; Next is on screen and a click at
its centre reaches it; no text is smaller than 11 px on screen (SVG text measured through the
drawing's scale).
"""

from __future__ import annotations

import pytest

from tests.test_trace_page import browser, no_errors, open_page, screenshot, trace_files  # noqa: F401

MEASURE = """
const box = (e) => {
  const r = e.getBoundingClientRect();
  return [r.left, r.top, r.right, r.bottom];
};
const meets = (a, b) =>
  a[0] < b[2] - 0.5 && b[0] < a[2] - 0.5 && a[1] < b[3] - 0.5 && b[1] < a[3] - 0.5;
const problems = [];
const drawing = box(document.getElementById('drawing')), svg = document.getElementById('net');
const net = box(svg), panel = box(document.getElementById('panel'));
const next = document.getElementById('next'), nextBox = box(next);
if (meets(drawing, panel)) problems.push('drawing overlaps the panel');
if (meets(drawing, nextBox)) problems.push('drawing overlaps Next');
if (meets(panel, nextBox)) problems.push('panel overlaps Next');
if (nextBox[2] > innerWidth || nextBox[3] > innerHeight) problems.push('Next off screen');
const hit = document.elementFromPoint((nextBox[0] + nextBox[2]) / 2, (nextBox[1] + nextBox[3]) / 2);
if (!next.contains(hit)) problems.push('a click on Next reaches ' + (hit && hit.id));
const inside = (b) =>
  b[0] >= net[0] - 1 && b[1] >= net[1] - 1 && b[2] <= net[2] + 1 && b[3] <= net[3] + 1;
const circles = Array.from(document.querySelectorAll('circle.neuron'));
circles.forEach((c) => { if (!inside(box(c))) problems.push('neuron outside the drawing'); });
document.querySelectorAll('.label rect').forEach((rect) => {
  const b = box(rect);
  if (!inside(b)) problems.push('label outside the drawing');
  circles.forEach((c) => {
    const k = box(c), cx = (k[0] + k[2]) / 2, cy = (k[1] + k[3]) / 2, r = (k[2] - k[0]) / 2;
    const dx = Math.max(b[0] - cx, 0, cx - b[2]), dy = Math.max(b[1] - cy, 0, cy - b[3]);
    if (dx * dx + dy * dy < r * r) problems.push('a label covers neuron ' + c.dataset.q);
  });
});
const captions = Array.from(document.querySelectorAll('.layer-caption')).map(box);
captions.forEach((a, i) => captions.slice(i + 1).forEach((b) => {
  if (meets(a, b)) problems.push('layer captions overlap');
}));
let smallest = 99, where = '';
document.querySelectorAll('body *').forEach((e) => {
  const own = Array.from(e.childNodes).some((n) => n.nodeType === 3 && n.textContent.trim());
  if (!own || !e.getClientRects().length || e.closest('#tip, script')) return;
  let size = parseFloat(getComputedStyle(e).fontSize);
  if (e instanceof SVGElement) size *= e.getScreenCTM().a;
  if (size < smallest) { smallest = size; where = e.tagName + ' ' + e.textContent.slice(0, 30); }
});
return [problems, smallest, where];
"""


@pytest.mark.parametrize("size", [(1024, 768), (800, 600)])
@pytest.mark.parametrize(
    "options",
    [
        ["--sizes", "3,4,4,2"],
        ["--sizes", "4,6,6,6,2", "--batch-norm", "--dropout", "0.2"],
    ],
)
def test_every_stage_fits_the_window(browser, tmp_path, size, options):  # noqa: F811
    from selenium.webdriver.common.by import By

    page, traced = trace_files(tmp_path, *options)
    browser.set_window_size(*size)
    try:
        inner = browser.execute_script("return [innerWidth, innerHeight]")
        browser.set_window_size(2 * size[0] - inner[0], 2 * size[1] - inner[1])
        assert browser.execute_script("return [innerWidth, innerHeight]") == list(size)
        open_page(browser, page)
        stages = 0
        while True:
            problems, smallest, where = browser.execute_script(MEASURE)
            here = browser.execute_script("return document.body.dataset.stage")
            assert not problems, (size, here, problems)
            assert smallest >= 11, (size, here, smallest, where)
            stages += 1
            if here == "step4-1":
                screenshot(
                    browser, tmp_path, f"trace-{size[0]}x{size[1]}-Q{len(traced['sizes']) - 1}.png"
                )
            if not browser.find_element(By.ID, "next").is_enabled():
                break
            browser.find_element(By.ID, "next").click()
        assert stages == 4 * (len(traced["sizes"]) - 1) + 2
        no_errors(browser)
    finally:
        browser.set_window_size(1400, 860)
