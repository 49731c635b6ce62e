"""Huawei Cloud: `ecs` (Elastic Cloud Server) and `bms` (Bare Metal Server), with AK/SK signing
(`signing`) or IAM tokens (`auth`), cloud jobs (`jobs`) and the error tables (`errors`)."""

__all__ = ["bms", "ecs"]
