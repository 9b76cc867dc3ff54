#!/usr/bin/env python3
"""A PAM client for the relying-party tests: what a login program does,
authenticating USER through the PAM service SERVICE read from CONFDIR
(Linux-PAM's pam_start_confdir, so that no file under /etc/pam.d is
needed), every hidden prompt answered with $S9CARD_TEST_PASSCODE as a
greeter would after asking the holder.

    pam_client.py CONFDIR SERVICE USER

Prints each message the stack shows and PAM's verdict; exits 0 when
authenticated, 1 when refused.
"""

import ctypes
import ctypes.util
import os
import sys

PAM_PROMPT_ECHO_OFF = 1
PAM_PROMPT_ECHO_ON = 2


class Message(ctypes.Structure):
    _fields_ = [("style", ctypes.c_int), ("text", ctypes.c_char_p)]


class Response(ctypes.Structure):
    _fields_ = [("resp", ctypes.c_void_p), ("retcode", ctypes.c_int)]


CONVERSE = ctypes.CFUNCTYPE(
    ctypes.c_int,
    ctypes.c_int,
    ctypes.POINTER(ctypes.POINTER(Message)),
    ctypes.POINTER(ctypes.POINTER(Response)),
    ctypes.c_void_p,
)


class Conversation(ctypes.Structure):
    _fields_ = [("converse", CONVERSE), ("data", ctypes.c_void_p)]


def main():
    if len(sys.argv) != 4:
        print(__doc__, file=sys.stderr)
        return 2
    confdir, service, user = sys.argv[1:]
    passcode = os.environ.get("S9CARD_TEST_PASSCODE", "").encode()
    libc = ctypes.CDLL(None)
    libc.calloc.restype = ctypes.c_void_p
    libc.calloc.argtypes = [ctypes.c_size_t, ctypes.c_size_t]
    libc.strdup.restype = ctypes.c_void_p
    libc.strdup.argtypes = [ctypes.c_char_p]
    pam = ctypes.CDLL(ctypes.util.find_library("pam"))
    pam.pam_strerror.restype = ctypes.c_char_p

    def converse(count, messages, responses, _data):
        # PAM frees what the answer points to: it must come from malloc.
        answers = ctypes.cast(
            libc.calloc(count, ctypes.sizeof(Response)), ctypes.POINTER(Response)
        )
        for i in range(count):
            message = messages[i].contents
            text = (message.text or b"").decode(errors="replace")
            print(f"pam: {text}", flush=True)
            if message.style == PAM_PROMPT_ECHO_OFF:
                answers[i].resp = libc.strdup(passcode)
            elif message.style == PAM_PROMPT_ECHO_ON:
                answers[i].resp = libc.strdup(b"")
        responses[0] = answers
        return 0

    conversation = Conversation(CONVERSE(converse), None)
    handle = ctypes.c_void_p()
    rc = pam.pam_start_confdir(
        service.encode(),
        user.encode(),
        ctypes.byref(conversation),
        confdir.encode(),
        ctypes.byref(handle),
    )
    if rc != 0:
        print(f"pam_start_confdir: {rc}", file=sys.stderr)
        return 1
    rc = pam.pam_authenticate(handle, 0)
    print(f"verdict: {pam.pam_strerror(handle, rc).decode()}", flush=True)
    pam.pam_end(handle, rc)
    return 0 if rc == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
