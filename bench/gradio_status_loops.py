"""Does Gradio's status tracker keep a requestAnimationFrame loop running with nothing pending?

A minimal Gradio app (no studio) in headless Chromium: it counts the status tracker's animation-frame callbacks a
second after the page loads, after events that update a visible output, and after one event that hides its output.
Each loop runs at the page's frame rate (60 a second) and costs the browser CPU for as long as the page stays open.
Measured 2026-12-07 on gradio 6.31.0: 60 after load, 60 after three plain updates, 120 after one hiding update, and
still 120 after an event hides a Column around a component (a container has no tracker). show_progress="full" or
"minimal" leaks the same as "hidden".
Run: .venv/bin/python bench/gradio_status_loops.py (needs Debian's chromium).
"""
import time

import gradio as gr
from playwright.sync_api import sync_playwright

def build():
    with gr.Blocks() as demo:
        box = gr.Markdown("shown", elem_id="box")
        plain = gr.Markdown("plain", elem_id="plain")
        hide = gr.Button("hide", elem_id="hide")
        same = gr.Button("same", elem_id="same")
        with gr.Column() as column:
            gr.Markdown("in a column", elem_id="inner")
        hide_column = gr.Button("hide the column", elem_id="hide-column")
        hide_column.click(lambda: gr.update(visible=False), None, [column], show_progress="hidden")
        hide.click(lambda: gr.update(visible=False), None, [box], show_progress="hidden")
        same.click(lambda: "again", None, [plain], show_progress="hidden")
    return demo

demo = build()
_, url, _ = demo.launch(prevent_thread_lock=True, quiet=True)
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
INIT = """(() => { const raf = window.requestAnimationFrame.bind(window); window.__n = 0;
  window.requestAnimationFrame = (cb) => {
    if ((new Error().stack || '').includes('statustracker')) window.__n++;
    return raf(cb); }; })()"""
with sync_playwright() as pw:
    b = pw.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
    ctx = b.new_context(); ctx.add_init_script(INIT); page = ctx.new_page()
    page.goto(url); page.wait_for_selector("#hide"); time.sleep(3)
    def rate(label):
        page.evaluate("() => { window.__n = 0; }"); time.sleep(3)
        print(label, round(page.evaluate("() => window.__n") / 3), "tracker rAF callbacks a second", flush=True)
    rate("after load:")
    for i in range(3):
        page.click("#same"); time.sleep(1)
    rate("after 3 events that update a visible output:")
    page.click("#hide"); time.sleep(1)
    rate("after 1 event that hides its output:")
    page.click("#hide-column"); time.sleep(1)
    rate("after 1 event that hides a column around a component instead:")
    b.close()
demo.close()
