"""Instance Investigation view: the selected example's outputs explained by saliency, or by a head's attention.

What an example and an output are depends on the run's task (a text and its class, a document and its sentences,
a sentence and its words): the task's app side draws the view (t3vis_app/tasks).
"""

import streamlit as st

from t3vis_app import sidebar, state
from t3vis_app.tasks import app_task

ctx = sidebar.render()
st.title("Instance")
app_task(ctx.run.task).instance_view(ctx)
state.write_url()
