import asyncpg
import pytest

from tests.conftest import PostgresCluster


@pytest.mark.postgres
async def test_each_test_gets_an_empty_database(
    postgres_cluster: PostgresCluster, pg_url: str
) -> None:
    dsn = pg_url.replace("postgresql+asyncpg", "postgresql")
    conn = await asyncpg.connect(dsn)
    try:
        assert (
            await conn.fetchval("select count(*) from pg_tables where schemaname = 'public'") == 0
        )
        assert (await conn.fetchval("show server_version")).split(".")[0].isdigit()
    finally:
        await conn.close()
