"""Contracts shared by the trainer, the server and the clients.

`bookrec.v1` is generated from proto/ (scripts/gen_proto.sh); `bookrec.artifact`
is the artifact format, the only thing the trainer and the server share.
"""
