# OML 4.0's docs, "Dataset format": checking the mock dataset's dataframes (the IMAGES part; texts and audios are
# the oml-text and oml-audio plugins').
from oml_core.data import get_mock_images_dataset
from oml_core.data import check_retrieval_dataframe_format

# IMAGES
df_train, df_val = get_mock_images_dataset(global_paths=True)
check_retrieval_dataframe_format(df=df_train)
check_retrieval_dataframe_format(df=df_val)
