from imagegate.storage.factory import open_storage

__all__ = ["open_storage"]
