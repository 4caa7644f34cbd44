"""Test infrastructure shared by every suite: the harness and backend runners, service
probes, proxies and receivers, test plugins (docs/testing.md)."""
