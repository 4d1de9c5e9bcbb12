"""Media checks: image and video parts of a record, and their counts across the file.

Each part must have a format the family takes and, where the family needs it, a
well-formed S3 location in the dataset's bucket; each record must stay within the
family's images/videos per record, and the dataset must not mix images and videos where
the family forbids it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from finetuning.data.models import ModelFamily
from finetuning.data.sources import S3Uri, S3UriError
from finetuning.data.validation.report import RecordProblem, ValidationReport

# AWS's reference Nova validator: object keys of letters, digits, "_", "-", "/", ".".
STRICT_KEY = re.compile(r"^[\w\-/.]+$")
_ACCOUNT_ID = re.compile(r"^\d{12}$")


class MediaChecker:
    """Checks media parts against ``family.media``; ``dataset_bucket`` is where the dataset
    is (or will be uploaded), when known."""

    def __init__(
        self, family: ModelFamily, report: ValidationReport, dataset_bucket: str | None
    ) -> None:
        self.family = family
        self.rules = family.media
        self.report = report
        self.dataset_bucket = dataset_bucket
        self.first_image_line: int | None = None
        self.first_video_line: int | None = None
        self.mixed_media_reported = False
        self.media_buckets: dict[str, int] = {}

    def check_part(self, part: dict, where: str, number: int) -> None:
        """One image or video part at ``where`` (a field name) on line ``number``."""
        rules = self.rules
        kind = part["type"]
        allowed = rules.image_formats if kind == "image" else rules.video_formats
        if not allowed:
            supported = sorted(rules.image_formats | rules.video_formats)
            raise RecordProblem(
                "media",
                f"{where}: {self.family.display_name} does not take {kind}s in training data "
                f"(supported media formats: {', '.join(supported) or 'none, text only'})",
            )
        fmt = part["format"]
        missing_format = fmt is None and self.family.is_bedrock
        if missing_format or (fmt is not None and fmt not in allowed):
            raise RecordProblem(
                "media",
                f"{where}: expected a {kind} format in {sorted(allowed)}, found {fmt!r}",
            )
        source = part["source"]
        location = source.get("s3Location")
        if location is None:
            if rules.s3_only:
                found = ", ".join(sorted(source)) or "nothing"
                raise RecordProblem(
                    "media",
                    f"{where}: expected the {kind} as source.s3Location.uri (an S3 object), "
                    f"found {found}",
                )
            return
        if not isinstance(location, Mapping) or not isinstance(location.get("uri"), str):
            raise RecordProblem(
                "s3-uri", f'{where}: expected source.s3Location to hold a "uri" string'
            )
        try:
            uri = S3Uri.parse(location["uri"])
        except S3UriError as exc:
            raise RecordProblem("s3-uri", f"{where}: {exc}") from None
        if rules.strict_key_characters and not STRICT_KEY.match(uri.key):
            raise RecordProblem(
                "s3-uri",
                f"{where}: object key {uri.key!r} has characters other than letters, digits, "
                "'_', '-', '/' and '.', which the training job rejects",
            )
        owner = location.get("bucketOwner")
        if owner is not None and not (isinstance(owner, str) and _ACCOUNT_ID.match(owner)):
            raise RecordProblem(
                "s3-uri",
                f"{where}: expected bucketOwner to be a 12-digit AWS account id, found {owner!r}",
            )
        if not rules.same_bucket_as_dataset:
            return
        if self.dataset_bucket is not None:
            if uri.bucket != self.dataset_bucket:
                raise RecordProblem(
                    "bucket",
                    f"{where}: {uri} is in bucket {uri.bucket!r}, but "
                    f"{self.family.display_name} needs images and videos in the dataset's "
                    f"bucket {self.dataset_bucket!r}",
                )
            return
        if uri.bucket not in self.media_buckets:
            if self.media_buckets:
                first_bucket, first_line = next(iter(self.media_buckets.items()))
                self.media_buckets[uri.bucket] = number
                raise RecordProblem(
                    "bucket",
                    f"{where}: {uri} is in bucket {uri.bucket!r} but line {first_line} uses "
                    f"{first_bucket!r}; {self.family.display_name} needs all media in the "
                    "dataset's own bucket",
                )
            self.media_buckets[uri.bucket] = number

    def check_counts(self, images: int, videos: int, number: int) -> None:
        """The record's image and video counts, and the file's mix of the two so far."""
        if not images and not videos:
            return
        rules = self.rules
        report = self.report
        report.images += images
        report.videos += videos
        if rules.max_images_per_record is not None and images > rules.max_images_per_record:
            raise RecordProblem(
                "media",
                f"expected at most {rules.max_images_per_record} images in one record, "
                f"found {images}",
            )
        if rules.max_videos_per_record is not None and videos > rules.max_videos_per_record:
            raise RecordProblem(
                "media",
                f"expected at most {rules.max_videos_per_record} video in one record, "
                f"found {videos}",
            )
        if images and self.first_image_line is None:
            self.first_image_line = number
        if videos and self.first_video_line is None:
            self.first_video_line = number
        if (
            rules.no_mixed_media
            and self.first_image_line is not None
            and self.first_video_line is not None
            and not self.mixed_media_reported
        ):
            self.mixed_media_reported = True
            raise RecordProblem(
                "media-mix",
                f"the dataset mixes images (first on line {self.first_image_line}) and videos "
                f"(first on line {self.first_video_line}); {self.family.display_name} needs "
                "text with images or text with videos, not both",
            )
