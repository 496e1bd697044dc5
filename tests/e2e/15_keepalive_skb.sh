#!/usr/bin/env bash
# The keep-alive 429 suite (14_keepalive.sh) again, with generic XDP (`rlshape load --mode
# skb`): the program runs on each packet's skb, and the acknowledgment TC sends in through the
# interface for a client that closed (bpf_clone_redirect(), bpf/lib/upstream_fin.h) meets the
# XDP program on its way in, which must let it by untouched.
set -euo pipefail
RLS_XDP_MODE=skb exec bash "$(dirname "${BASH_SOURCE[0]}")/14_keepalive.sh"
