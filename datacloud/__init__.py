"""datacloud: the nightly ETL behind the provincial data-resource cloud (政务数据资源共享平台)."""

__version__ = "0.1.0"
