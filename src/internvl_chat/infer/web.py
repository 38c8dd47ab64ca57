"""The web chat page (optional extra `web`: NiceGUI), mounted at / of the API server.

NiceGUI serves its Vue/Quasar front end from the installed package (nothing is fetched
from the internet) and runs its handlers on the server's own event loop, so the page
submits to the same request batcher as the HTTP API and streams replies as they decode.
CSS classes `ivl-*` name the parts a browser test drives. Each browser tab has its own
conversation; uploading an image starts a new one, since
V1.2 sees one image per conversation.
"""

from __future__ import annotations

import dataclasses
import hmac

from fastapi import FastAPI, Request

from ..image import ImageLoadError, load_image
from .engine import ChatTurn, SamplingParams

_mounted = False  # NiceGUI keeps one global app per process


def _prepare(engine, config, turns: list) -> object:
    """The engine request of the page's conversation, capped to the room left in the context (ValueError if none)."""
    request = engine.prepare(turns, SamplingParams(max_new_tokens=config.default_max_tokens,
                                                   temperature=config.default_temperature))
    room = engine.max_context - len(request.input_ids)
    if room < 1:
        raise ValueError(f"the conversation is {len(request.input_ids)} tokens, the model's whole "
                         f"context; start a new chat")
    request.params = dataclasses.replace(request.params, max_new_tokens=min(room, config.default_max_tokens))
    return request


def _key_ok(config, request: Request) -> bool:
    """The page needs the server's API key (as ?key=) when one is set."""
    return not config.api_key or hmac.compare_digest(request.query_params.get("key", "").encode(),
                                                     config.api_key.encode())


def _with_question(state: dict, text: str) -> list:
    """The conversation plus the user's new question; the image goes with the first question only."""
    first = not state["turns"]
    images = [state["image"]] if first and state["image"] is not None else []
    return state["turns"] + [ChatTurn("user", text, images)]


async def _stream(future, pieces, answer):
    """Show the reply as it decodes; the engine's result once done (raises what generation raised)."""
    reply = ""
    async for piece in pieces:
        reply += piece
        answer.set_text(reply)
    return future.result()


def mount_web_ui(app: FastAPI, service, title: str = "InternVL-Chat") -> None:
    try:
        from nicegui import ui
    except ImportError:
        raise ImportError("the web page needs the optional extra: pip install 'internvl-chat[web]' (NiceGUI)") from None
    global _mounted
    if _mounted:
        raise RuntimeError("the web page can be mounted on one app per process (NiceGUI is process-global)")
    _mounted = True
    ui.page("/")(_chat_page(service, title))
    ui.run_with(app, mount_path="/", title=title, show_welcome_message=False, reconnect_timeout=10.0)


def _chat_page(service, title: str):
    """The page handler: one conversation per browser tab."""
    from nicegui import events, ui
    engine, config = service.engine, service.config

    async def chat_page(request: Request):
        state = {"image": None, "turns": [], "busy": False}
        ui.label(title).classes("text-2xl font-bold")
        if not _key_ok(config, request):
            ui.label("This server needs its API key: open /?key=KEY").classes("ivl-status")
            return
        ui.label(f"model: {config.model_name}").classes("text-sm text-gray-500")
        status = ui.label("Upload an image, then ask a question about it.").classes("ivl-status")

        async def on_upload(e: events.UploadEventArguments):
            data = await e.file.read()
            uploader.reset()  # ready for the next image
            try:
                image = load_image(data, max_pixels=config.image.max_image_pixels)
            except ImageLoadError as err:
                status.set_text(f"That file is not a usable image: {err.reason}")
                return
            state["image"], state["turns"] = image, []
            messages.clear()
            preview.set_source(image)
            preview.visible = True
            status.set_text(f"Image loaded ({image.width}x{image.height}); new conversation.")

        uploader = ui.upload(label="Image", auto_upload=True, on_upload=on_upload,
                             max_file_size=config.image.max_image_bytes).props("accept=image/*").classes("ivl-upload")
        preview = ui.image().classes("w-48 ivl-preview")
        preview.visible = False
        messages = ui.column().classes("w-full max-w-3xl ivl-messages")
        with ui.row().classes("w-full max-w-3xl items-center"):
            question = ui.input(placeholder="Ask about the image").classes("grow ivl-question")
            send_button = ui.button("Send").classes("ivl-send")
            ui.button("New chat", on_click=lambda: (state["turns"].clear(), messages.clear(),
                                                    status.set_text("Conversation cleared."))).classes("ivl-reset")

        async def send():
            text = (question.value or "").strip()
            if not text or state["busy"]:
                return
            state["busy"] = True
            question.set_value("")
            turns = _with_question(state, text)
            with messages:
                ui.chat_message(text, name="You", sent=True)
                with ui.chat_message(name="InternVL"):
                    answer = ui.label("").classes("ivl-answer")
            try:
                request = _prepare(engine, config, turns)
            except ValueError as err:
                answer.set_text(f"[refused: {err}]")
                state["busy"] = False
                return
            status.set_text("Generating...")
            try:
                future, pieces = service.submit_streaming(request)
            except Exception as err:  # queue full: say so on the page
                answer.set_text(f"[server busy: {err}]")
                state["busy"] = False
                return
            try:
                result = await _stream(future, pieces, answer)
                state["turns"] = turns + [ChatTurn("assistant", result.text)]
                status.set_text(f"Done ({result.completion_tokens} tokens, {result.finish_reason}).")
                answer.classes(add="ivl-answer-done")
            except ValueError as err:  # e.g. the conversation outgrew the model's context
                answer.set_text(f"[error: {err}]")
                status.set_text("Failed; start a new chat.")
            finally:
                request.cancelled.set()
                state["busy"] = False

        send_button.on_click(send)
        question.on("keydown.enter", send)

    return chat_page
