"""An executor that runs what it is given at once, on the thread that asks."""

import concurrent.futures


class InlineExecutor(concurrent.futures.Executor):
    """Given to a stage's make_app(db, thumbnail_executor=InlineExecutor()), it makes the
    thumbnails on the event loop itself, blocking it, as a handler that calls Pillow
    itself does: what bench/blocking.py and notebook 03 measure against the stage's
    thread pool."""

    def submit(self, function, /, *args, **kwargs):
        future = concurrent.futures.Future()
        try:
            future.set_result(function(*args, **kwargs))
        except Exception as error:
            future.set_exception(error)
        return future
