import os
import uuid

from runengine.documents import new_uid


def test_uids_are_version_4_uuids_and_unique():
    uids = [new_uid() for _ in range(20000)]
    assert len(set(uids)) == len(uids)
    for uid in uids[:100]:
        parsed = uuid.UUID(uid)
        assert str(parsed) == uid
        assert parsed.version == 4 and parsed.variant == uuid.RFC_4122


def test_forked_children_do_not_repeat_the_parents_uids():
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.write(write, new_uid().encode())
        os._exit(0)
    os.waitpid(pid, 0)
    child_uid = os.read(read, 64).decode()
    assert child_uid != new_uid()
    assert uuid.UUID(child_uid).version == 4
