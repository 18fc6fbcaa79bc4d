"""model.h5 and checkpoint.h5: HDF5 built in memory with a checksum per array, and read back with
every declared size, link and checksum checked (RunWriter.save_model writes the bytes; runs.py
re-exports these for the rest of the package)."""

import hashlib
import io
import json
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dltrain.errors import DltrainError, one_line
from dltrain.safe_read import check_regular

if TYPE_CHECKING:
    import numpy as np


def model_image(groups: "dict[str, dict[str, np.ndarray] | str]") -> bytes:
    """The bytes of save_model's HDF5 file, built in memory.

    libhdf5 never touches the disk here: a full disk fails the plain write of these bytes (an
    OSError naming the file, the temporary file removed) instead of failing inside libhdf5's close,
    which raised RuntimeError and left a half-closed file object behind (a later close of it could
    crash the process). The file is opened and closed exactly once, in this function.
    """
    import h5py  # here, not at the top: `dltrain runs` reads run folders without NumPy or h5py
    import numpy as np

    buffer = io.BytesIO()
    checksums = {}
    f = h5py.File(buffer, "w", libver=("v110", "latest"))
    try:
        for group, content in groups.items():
            if isinstance(content, str):
                data = content.encode()
                f.attrs.create(group, data, dtype=h5py.string_dtype("utf-8", max(len(data), 1)))
                continue
            g = f.create_group(group)
            for key, array in content.items():
                array = np.asarray(array)
                g.create_dataset(key.replace("/", "|"), data=array)
                checksums[f"{group}/{key}"] = array_checksum(array)
        data = json.dumps(checksums).encode()
        f.attrs.create(CHECKSUMS, data, dtype=h5py.string_dtype("utf-8", max(len(data), 1)))
    finally:
        f.close()
    return buffer.getvalue()


CHECKSUMS = "checksums"
MAX_ATTRIBUTE_BYTES = 10 * 2**20


def array_checksum(array: "np.ndarray") -> str:
    """sha256 of an array's dtype, shape and bytes: what model.h5 records of each array it holds."""
    h = hashlib.sha256(f"{array.dtype.str}{array.shape}".encode())
    h.update(array.tobytes())  # C order, whatever the array's layout
    return h.hexdigest()


def read_model(path: Path, what: str = "model file") -> "dict[str, dict[str, np.ndarray] | str]":
    """Inverse of RunWriter.save_model, or DltrainError naming the file.

    Every array's declared size and type are checked before it is read, so a corrupt or hostile
    file cannot make dltrain allocate more than the machine has; links, external storage and
    oversized attributes are refused; each array is checked against the checksum recorded when it
    was written (files written before checksums load without the check).
    """
    import h5py
    import numpy as np

    from dltrain.data.files import plain_dataset
    from dltrain.data.limits import check_array_size, check_budget

    check_regular(Path(path), what)
    try:
        with h5py.File(path, "r") as f:
            out: dict[str, Any] = {}
            for k in f.attrs:
                if f.attrs.get_id(k).get_storage_size() > MAX_ATTRIBUTE_BYTES:
                    raise DltrainError(f"{what} {path}: the attribute {k} is larger than {MAX_ATTRIBUTE_BYTES} bytes")
                v = f.attrs[k]
                out[k] = v.decode() if isinstance(v, bytes) else str(v)
            checksums = json.loads(out.pop(CHECKSUMS, "null"))
            if checksums is not None and not (isinstance(checksums, dict) and all(isinstance(v, str) for v in checksums.values())):
                raise DltrainError(f"{what} {path}: the attribute {CHECKSUMS} is not a mapping of array names to checksums")
            declared = 0
            for group in f:
                if not isinstance(f.get(group, getlink=True), h5py.HardLink) or not isinstance(f[group], h5py.Group):
                    raise DltrainError(f"{what} {path}: unexpected entry {group}")
                g = f[group]
                out[group] = {}
                for key in g:
                    name = key.replace("|", "/")
                    where = f"{what} {path}: {group}/{name}"
                    ds = plain_dataset(where, g, key)
                    if ds.dtype.kind not in "biuf":
                        raise DltrainError(f"{where} should be a numeric array, got {ds.dtype}")
                    check_array_size(where, ds.shape, ds.dtype.itemsize)
                    declared += math.prod(ds.shape) * 8
                    check_budget(f"{what} {path}: its arrays", declared, "the file declares a larger model than this machine can hold")
                    array = np.asarray(ds[()])
                    if checksums is not None and checksums.get(f"{group}/{name}") != array_checksum(array):
                        raise DltrainError(f"{where} does not match its recorded checksum: the file was changed or damaged")
                    out[group][name] = array
            if checksums is not None and set(checksums) != {f"{g}/{k}" for g, arrays in out.items() if isinstance(arrays, dict) for k in arrays}:
                raise DltrainError(f"{what} {path}: its arrays are not those its {CHECKSUMS} attribute records (one was added or removed)")
            return out
    except DltrainError:
        raise
    except RecursionError:
        raise DltrainError(f"{what} {path}: an attribute nests too deeply") from None
    except Exception as e:  # h5py fed damaged bytes fails every way (OSError, KeyError, TypeError, ...)
        raise DltrainError(f"{what} {path} is not a readable dltrain model; the file is damaged ({type(e).__name__}: {one_line(e)})") from None
