"""The two sides of the cross suite (sipe_alice.py, xmpp_bob.py) meet through files: a cue
is a JSON file written whole (renamed into place), an abort-<side> file says that side gave
up, so the other stops at once instead of waiting out its timeout."""
import asyncio
import json
import os
import sys
import time

CUE_WAIT = 60


class Aborted(Exception):
    pass


class Cues:
    def __init__(self, d, me, other):
        self.d, self.me, self.other = d, me, other
        os.makedirs(d, exist_ok=True)

    def put(self, name, data=None):
        tmp = os.path.join(self.d, ".%s.tmp" % name)
        with open(tmp, "w") as f:
            json.dump(data or {}, f)
        os.rename(tmp, os.path.join(self.d, name))
        print("cue -> %s %s" % (name, json.dumps(data or {})), file=sys.stderr, flush=True)

    def poll(self, name):
        """The cue's data if it came; raises Aborted if the other side gave up."""
        path, abort = os.path.join(self.d, name), os.path.join(self.d, "abort-" + self.other)
        if os.path.exists(path):
            with open(path) as f:
                data = json.load(f)
            print("cue <- %s %s" % (name, json.dumps(data)), file=sys.stderr, flush=True)
            return data
        if os.path.exists(abort):
            raise Aborted("%s gave up (%s)" % (self.other, open(abort).read().strip()))
        return None

    def wait(self, name, timeout=CUE_WAIT):
        end = time.time() + timeout
        while time.time() < end:
            data = self.poll(name)
            if data is not None:
                return data
            time.sleep(0.2)
        raise Aborted("no cue %r from %s within %ds" % (name, self.other, timeout))

    async def wait_async(self, name, timeout=CUE_WAIT):
        end = time.time() + timeout
        while time.time() < end:
            data = self.poll(name)
            if data is not None:
                return data
            await asyncio.sleep(0.2)
        raise Aborted("no cue %r from %s within %ds" % (name, self.other, timeout))

    def abort(self, why):
        with open(os.path.join(self.d, "abort-" + self.me), "w") as f:
            f.write(why)
