"""The images server: binds `schemas/images.json` to `ImagesService`; `generate` is absent without backends."""

from __future__ import annotations

from typing import Any

from servers.images.config import ImagesConfig
from servers.images.service import ImagesService
from servers.kit import Domain, ServerSettings, ToolContext, ToolResult

INSTRUCTIONS = (
    "Generate images from text prompts with `generate`. Each image is saved in the hub's storage; share "
    "the URL or resource link you get back, never image data."
)


def create(settings: ServerSettings) -> Domain:
    config = settings.parse(ImagesConfig)
    service = ImagesService(config)
    domain = Domain("images", hub=settings.hub, instructions=INSTRUCTIONS)
    domain.service = service

    @domain.tool("generate")
    async def generate(args: dict[str, Any], ctx: ToolContext) -> ToolResult:
        answer = await service.generate(args, ctx.hub or domain.hub)
        links = [
            {
                "type": "resource_link",
                "uri": image["url"],
                "name": image["key"].rsplit("/", 1)[-1],
                "mimeType": image["content_type"],
                "size": image["size"],
            }
            for image in answer["images"]
            if image["url"].startswith(("http://", "https://"))
        ]
        urls = "\n".join(image["url"] for image in answer["images"])
        text = f"{len(answer['images'])} image(s) from {answer['model']}, saved in storage:\n{urls}"
        return ToolResult(structured=answer, content=links, text=text)

    if not config.backends:
        domain.hide("generate", "no image backend is configured (images.backends)")
    domain.check_complete()
    return domain
