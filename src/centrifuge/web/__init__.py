"""``centrifuge serve``: a local web page that separates uploaded videos (the ``web`` extra).

Needs Starlette and uvicorn (the ``web`` extra, which ``make install`` installs). The page calls the
library functions ``centrifuge separate`` calls; see :mod:`centrifuge.web.app` for the routes and
:mod:`centrifuge.web.jobs` for the checks on uploads and the job worker.
"""
