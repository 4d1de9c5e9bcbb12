"""The delivery tests synthesize CDK apps: keep the jsii kernel's Node.js banner quiet.

Set before any test module imports aws_cdk (which starts the kernel).
"""

from __future__ import annotations

import os

os.environ.setdefault("JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION", "1")
os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")
