import pickle

import pytest

from fdbcore import errors


def test_codes_are_unique_and_match_fdb_names() -> None:
    table = errors.all_errors()
    assert table[2314].name == "backup_invalid_url"
    assert table[2390].name == "restore_bulkload_dataset_incomplete"
    assert table[1250].name == "bulkload_invalid_configuration"
    assert len({cls.name for cls in table.values()}) == len(table)


def test_error_text_names_error_and_code() -> None:
    err = errors.BucketNotInUrl("no bucket in blobstore://host/name")
    assert str(err) == "no bucket in blobstore://host/name (bucket_not_in_url, 2322)"
    assert isinstance(err, errors.FDBError)


def test_error_round_trips_by_code_and_pickle() -> None:
    err = errors.error_for_code(2370, "destination has keys")
    assert isinstance(err, errors.RestoreDestinationNotEmpty)
    again = pickle.loads(pickle.dumps(err))
    assert type(again) is type(err) and again.message == "destination has keys"
    assert isinstance(errors.error_for_code(99999), errors.UnknownError)


def test_catching_specific_error() -> None:
    with pytest.raises(errors.TransactionTooOld):
        raise errors.TransactionTooOld("read version 5 is too old")
