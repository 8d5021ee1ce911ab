"""Verified, durable receiver for Huawei Cloud MetaStudio live-stream callbacks."""

__version__ = "0.1.0"
