"""SQL console: one read-only SELECT over the open store, with a schema browser and example queries."""

import io

import streamlit as st

from t3vis import charts
from t3vis.errors import T3visError
from t3vis.markdown_text import escape_markdown as md
from t3vis.queries.sql_console import (DEFAULT_MAX_BYTES, DEFAULT_MAX_ROWS, DEFAULT_MEMORY_LIMIT, DEFAULT_TIMEOUT,
                                         run_query, warm_up)
from t3vis_app import data, sidebar
from t3vis_app.figure_downloads import figure_buttons
from t3vis_app.tasks import app_task

ctx = sidebar.render()
warm_up()  # queries run in a worker process: start one while the visitor writes the query
st.title("SQL")
st.caption("One SELECT query over the store (DuckDB SQL). The console only reads: statements that change the "
           f"store, other files and extensions are refused; queries stop after {DEFAULT_TIMEOUT:g} s or "
           f"{DEFAULT_MEMORY_LIMIT} of memory and show at most {DEFAULT_MAX_ROWS:,} rows "
           f"({DEFAULT_MAX_BYTES / 1e6:g} MB).")

with st.expander("Schema: tables, views and columns"):
    schema = data.schema_description(ctx.store)
    objects = schema.drop_duplicates("object")[["object", "kind", "object_description"]]
    st.dataframe(objects.rename(columns={"object_description": "description"}), hide_index=True)
    chosen = st.selectbox("Columns of", objects.object.tolist())
    st.dataframe(schema[schema.object == chosen][["column", "type", "description"]], hide_index=True)

EXAMPLES = app_task(ctx.run.task).example_queries()  # about any run, then about runs of this one's task
titles = ["—"] + [query.title for query in EXAMPLES]
example = st.selectbox("Example queries", titles, key="sql_example",
                       help="Queries about any run, then about runs of this run's task; picking one puts it in the "
                            "editor.")
if example != "—" and st.session_state.get("_sql_example_loaded") != example:
    st.session_state["sql_text"] = next(q.sql for q in EXAMPLES if q.title == example)
    st.session_state["_sql_example_loaded"] = example
st.session_state.setdefault("sql_text", "SELECT region, count(*) AS n FROM data_map GROUP BY region")
sql = st.text_area("Query", key="sql_text", height=180)
if st.button("Run", type="primary"):
    try:
        st.session_state["sql_result"] = (sql, run_query(ctx.store.database, sql))
    except T3visError as error:
        st.session_state["sql_result"] = (sql, error)

ran = st.session_state.get("sql_result")
if ran is not None:
    text, result = ran
    if isinstance(result, Exception):
        st.error(md(result))  # DuckDB's messages quote the data
    else:
        st.caption(result.notice)
        st.dataframe(result.frame, hide_index=True)
        chart = charts.auto_chart(result.frame)
        if chart is not None:
            st.altair_chart(chart)
            figure_buttons(chart, name="t3vis-query", caption="query: " + " ".join(text.split())[:160],
                           key="figure.sql")
        left, right = st.columns(2)
        left.download_button("Download CSV", lambda: result.frame.to_csv(index=False), file_name="t3vis-query.csv",
                             mime="text/csv")

        def parquet() -> bytes:
            buffer = io.BytesIO()
            result.frame.to_parquet(buffer, index=False)
            return buffer.getvalue()

        right.download_button("Download Parquet", parquet, file_name="t3vis-query.parquet",
                              mime="application/vnd.apache.parquet")
