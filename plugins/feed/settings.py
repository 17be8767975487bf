"""``[plugins.feed]``: the limits on attachments."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

MB = 1_000_000


class FeedSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    max_image_bytes: int = Field(default=5 * MB, ge=1)
    # Up to these a video needs no plan; beyond, the premium feature feed.longvideo.
    free_video_bytes: int = Field(default=50 * MB, ge=1)
    free_video_seconds: float = Field(default=120, gt=0)
    # Nobody uploads more than this.
    max_video_bytes: int = Field(default=512 * MB, ge=1)
